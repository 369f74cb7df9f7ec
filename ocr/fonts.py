"""Installed fonts that can draw given characters: for rendering synthetic lines (``ocr adapt``) and for
drawing readings over pages (``--draw``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
#: Fonts whose character maps claim letters but draw symbols or placeholder boxes.
SYMBOL_FONT_PREFIXES = ("lastresort", "cmex", "cmsy", "cmmi", "stixsiz", "stixnonuni", "symbol", "wingding")
#: Single fonts; ``.ttc`` collections (Debian's Noto CJK) are asked for by callers that can load them.
FONT_SUFFIXES = (".ttf", ".otf")


def _packaged_font_dirs() -> list[Path]:
    dirs = []
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    return dirs


def _covers(path: Path, chars: str) -> bool:
    """True if the font file has a glyph for every character (checked with fontTools when available)."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        return True
    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            cmap = font.getBestCmap() or {}
    except Exception:
        return False
    return all(ord(ch) in cmap for ch in chars if not ch.isspace())


def fonts_covering(chars: str, extra_dirs: tuple[Path, ...] = (), suffixes: tuple[str, ...] = FONT_SUFFIXES
                   ) -> Iterator[Path]:
    """Font files (``extra_dirs``, packaged, system; one per file name) that can draw every one of ``chars``,
    found one at a time."""
    seen: set[str] = set()
    for directory in (*extra_dirs, *_packaged_font_dirs(), *SYSTEM_FONT_DIRS):
        if directory.is_dir():
            for path in sorted(directory.rglob("*")):
                if (
                    path.suffix.lower() in suffixes
                    and path.name not in seen
                    and not path.name.lower().startswith(SYMBOL_FONT_PREFIXES)
                    and _covers(path, chars)
                ):
                    seen.add(path.name)
                    yield path


def find_fonts(chars: str, extra_dirs: tuple[Path, ...] = ()) -> list[Path]:
    """TrueType/OpenType fonts (packaged, system, ``extra_dirs``) that can draw every one of ``chars``."""
    return list(fonts_covering(chars, extra_dirs))
