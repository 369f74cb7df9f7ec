"""Showing page readings: text and JSON records of lines, and a picture of the boxes over the image."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from crnn.weights import write_atomically
from ocr.fonts import fonts_covering
from textdet.page import Line

#: ``ocr read`` without ``--detect`` warns about images at least this tall whose width is under
#: ``PAGE_MAX_ASPECT`` times their height: a text line is much wider than tall, a page or photo is not.
PAGE_MIN_HEIGHT = 300
PAGE_MAX_ASPECT = 2.5


def looks_like_page(width: int, height: int) -> bool:
    """True for an image shaped like a page or photo rather than a cropped line of text."""
    return height >= PAGE_MIN_HEIGHT and width < PAGE_MAX_ASPECT * height


def line_record(line: Line, char_details: bool = True) -> dict:
    """A line as a JSON-ready dict: box, text, confidence, and (optionally) character spans."""
    record: dict = {"box": [list(corner) for corner in line.box], "text": line.text,
                    "confidence": round(line.confidence, 4)}
    if line.rejected:
        record["rejected"] = True
    if char_details:
        record["chars"] = [{"text": c.text, "confidence": round(c.confidence, 4), "x_start": c.x_start,
                            "x_end": c.x_end} for c in line.chars]
    return record


def format_page(image: str, lines: Sequence[Line], as_json: bool) -> str:
    """A page's reading: one JSON object with every line, or one tab-separated row per line.

    Rows are ``image<TAB>line number<TAB>corners<TAB>text<TAB>confidence``, corners as ``x,y`` pairs
    separated by spaces, clockwise from the top-left.
    """
    if as_json:
        return json.dumps({"image": image, "lines": [line_record(line) for line in lines]}, ensure_ascii=False)
    rows = []
    for number, line in enumerate(lines, 1):
        corners = " ".join(f"{x},{y}" for x, y in line.box)
        rows.append(f"{image}\t{number}\t{corners}\t{line.text}\t{line.confidence:.4f}"
                    + ("\trejected" if line.rejected else ""))
    return "\n".join(rows) if rows else f"{image}\t0\t\t\t"


#: Pillow's default font (Aileron) draws Latin letters up to Latin Extended-B; a line with later characters
#: (Greek, CJK, kana, ...) is drawn in an installed font that has every one of them.
DEFAULT_FONT_LAST = 0x24F


@lru_cache(maxsize=64)
def _font_file_for(chars: str) -> str | None:
    """The first installed font (collections too) with a glyph for every one of ``chars``."""
    path = next(fonts_covering(chars, suffixes=(".ttf", ".otf", ".ttc")), None)
    return None if path is None else str(path)


def drawing_font(text: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font, or, for text it cannot draw, an installed font that can (default if none)."""
    beyond = any(ord(ch) > DEFAULT_FONT_LAST for ch in text)
    path = _font_file_for("".join(sorted(set(text) - {" "}))) if beyond else None
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def draw_lines(gray: np.ndarray, lines: Sequence[Line], path: Path) -> Path:
    """Write a PNG (atomically): the page with each line's box on the left, its text at the same place on the right.

    Lines below 0.5 confidence (or rejected) are drawn red, the others blue.
    """
    page = Image.fromarray(gray).convert("RGB")
    width, height = page.size
    canvas = Image.new("RGB", (2 * width, height), (255, 255, 255))
    canvas.paste(page, (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.line([(width, 0), (width, height)], fill=(180, 180, 180), width=1)
    for line in lines:
        colour = (220, 30, 30) if line.rejected or line.confidence < 0.5 else (20, 110, 220)
        draw.polygon(line.box, outline=colour, width=2)
        xs, ys = [x for x, _ in line.box], [y for _, y in line.box]
        size = max(8, int((max(ys) - min(ys)) * 0.75))
        draw.text((width + min(xs), min(ys)), line.text, fill=colour, font=drawing_font(line.text, size))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())
    return path
