"""Which files are images, and the image files a list of paths names (files as given, folders searched)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

#: File name suffixes read as images, wherever a folder is searched (``ocr read``/``batch``/``client``/``adapt``,
#: page sets' ``images/``).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm"})


def expand_inputs(inputs: tuple[Path, ...]) -> Iterator[Path]:
    """Files as given; folders as their image files (recursively, sorted)."""
    for path in inputs:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            yield path
