"""Synthetic whole pages for detection tests: known words drawn at known places."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocr.fonts import find_fonts

ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def page_font(size: int = 30) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font that draws capitals and digits (matplotlib ships DejaVu), else PIL's default."""
    fonts = find_fonts(ALPHANUMERIC)
    preferred = [f for f in fonts if f.name.startswith("DejaVuSans")] or fonts
    return ImageFont.truetype(str(preferred[0]), size) if preferred else ImageFont.load_default(size=size)


def render_page(rows: list[tuple[int, int, str]], size: tuple[int, int] = (640, 480), font_size: int = 30,
                angle: float = 0.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """A white grey page with each ``(x, y, text)`` drawn in black; returns it and each text's box (4, 2).

    With ``angle`` (degrees) the whole page is rotated about its centre afterwards (boxes are not returned
    rotated: they are for upright pages only).
    """
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = page_font(font_size)
    boxes = []
    for x, y, text in rows:
        draw.text((x, y), text, fill=0, font=font)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        boxes.append(np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32))
    if angle:
        image = image.rotate(angle, resample=Image.BICUBIC, fillcolor=255)
    return np.asarray(image), boxes
