"""Render the small labelled example set in ``examples/`` (used by ``make serve``'s demo and ``ocr bench``).

    python scripts/tools/make_examples.py

Uses Pillow's bundled scalable font, so it needs nothing else installed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = ["HELLO", "Invoice 2024", "A1B2C3", "7", "recognition", "OCR-42", "$19.99", "Street"]
OUT = Path(__file__).resolve().parents[2] / "examples"


def render(text: str, size: int, ink: int, paper: int, blur: float) -> Image.Image:
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    pad = size // 3
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), paper)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=ink, font=font)
    return image.filter(ImageFilter.GaussianBlur(blur)) if blur else image


def main() -> None:
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, word in enumerate(WORDS):
        image = render(word, size=28 + 6 * (i % 3), ink=20 + 10 * (i % 4), paper=235 - 8 * (i % 3), blur=0.6 * (i % 2))
        name = f"images/{i:02d}.png"
        image.save(OUT / name)
        lines.append(f"{name}\t{word}\n")
    (OUT / "gt.tsv").write_text("".join(lines), encoding="utf-8")
    print(f"wrote {len(WORDS)} images to {OUT}")


if __name__ == "__main__":
    main()
