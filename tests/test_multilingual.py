"""PP-OCRv6 small's whole alphabet: accented Latin, Chinese and Japanese lines rendered in fonts Debian ships,
read zero-shot; ``--allow`` narrows it. Skips without the fonts (``apt-get install fonts-dejavu-core
fonts-noto-cjk``) or without the rapidocr wheel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from crnn import Recognizer

pytest.importorskip("rapidocr", reason="the PP-OCRv6 weights ship in the rapidocr wheel")

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
NOTO_CJK = [Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
            Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")]


def render(text: str, font_path: Path, size: int = 40) -> np.ndarray:
    """Black text on white with a margin of a quarter of the size, as an RGB array."""
    font = ImageFont.truetype(str(font_path), size)
    left, top, right, bottom = font.getbbox(text)
    margin = size // 4
    image = Image.new("RGB", (right - left + 2 * margin, bottom - top + 2 * margin), "white")
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill="black")
    return np.asarray(image)


def font_or_skip(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(f"no font at {', '.join(map(str, candidates))}")


@pytest.fixture(scope="module")
def ppocr() -> Recognizer:
    return Recognizer("ppocrv6_small", device="cpu", precision="fp32")


@pytest.mark.parametrize("text", ["Café déjà vu", "Straße über Köln", "Año señor niño", "Ça coûte 5 €"])
def test_accented_latin_lines(ppocr: Recognizer, text: str) -> None:
    result = ppocr.recognize([render(text, font_or_skip(DEJAVU))])[0]
    assert result.text == text


@pytest.mark.parametrize("text", ["中文文字识别", "欢迎光临北京", "日本語のテキスト", "カタカナとひらがな"])
def test_chinese_and_japanese_lines(ppocr: Recognizer, text: str) -> None:
    result = ppocr.recognize([render(text, font_or_skip(*NOTO_CJK))])[0]
    assert result.text == text


def test_allowlist_narrows_the_alphabet(ppocr: Recognizer) -> None:
    image = render("Café 42", font_or_skip(DEJAVU))
    assert ppocr.recognize([image])[0].text == "Café 42"
    narrowed = ppocr.recognize([image], allowlist="Cafe 0123456789")[0].text
    assert "é" not in narrowed and set(narrowed) <= set("Cafe 0123456789")


def test_character_spans_fall_on_their_glyphs(ppocr: Recognizer) -> None:
    """PP-OCRv6's frames are 8 columns apart (english_g2's 4): spans are mapped back with its own stride."""
    font = ImageFont.truetype(str(font_or_skip(DEJAVU)), 40)
    image = Image.new("RGB", (600, 60), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 5), "A", font=font, fill="black")
    draw.text((500, 5), "Z", font=font, fill="black")
    result = ppocr.recognize([np.asarray(image)])[0]
    assert result.text == "AZ"
    (a, z) = result.chars
    assert 10 <= a.x_start < a.x_end <= 70 and 490 <= z.x_start < z.x_end <= 560


def test_drawn_pages_use_a_font_that_has_the_glyphs() -> None:
    """``--draw`` writes a CJK reading in an installed CJK font (Pillow's default font has none), Latin in the
    default."""
    from ocr.output.pages import drawing_font

    font_or_skip(*NOTO_CJK)
    cjk = drawing_font("欢迎光临 北京", 20)
    assert "CJK" in cjk.getname()[0]
    assert drawing_font("TOTAL 9.00", 20).getname() == ImageFont.load_default(size=20).getname()
