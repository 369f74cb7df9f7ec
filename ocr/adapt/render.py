"""Font-rendered synthetic text lines, styled like the user's real images."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont


@lru_cache(maxsize=512)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size) if path is None else ImageFont.truetype(path, size)


@dataclass(frozen=True)
class Style:
    """Intensities and degradations measured on one real image."""

    ink: float
    paper: float
    blur: float
    noise: float


def estimate_style(gray: np.ndarray) -> Style:
    """Ink and paper levels (the 5th/95th percentiles, ink being the minority), blur and noise."""
    low, high, median = np.percentile(gray, [5, 95, 50])
    ink, paper = (low, high) if median >= (low + high) / 2 else (high, low)
    g = gray.astype(np.float32)
    detail = np.abs(np.diff(g, axis=1)).mean() / max(abs(paper - ink), 1.0)
    blur = float(np.clip(0.6 / max(detail, 1e-3) * 0.05, 0.0, 2.0))
    residual = g[1:-1, 1:-1] - (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]) / 4 if min(g.shape) > 2 else g
    noise = float(np.clip(np.median(np.abs(residual)) * 1.4, 0.0, 25.0))
    return Style(float(ink), float(paper), blur, noise)


class Renderer:
    """Draws text lines in random fonts with styles sampled from the real images."""

    def __init__(self, fonts: list[Path], styles: list[Style], seed: int, use_default_font: bool = True) -> None:
        self.fonts: list[str | None] = [str(f) for f in fonts] + ([None] if use_default_font else [])
        if not self.fonts:
            raise ValueError("no fonts available for rendering")
        self.styles = styles or [Style(20.0, 235.0, 0.5, 3.0)]
        self.rng = random.Random(seed)

    def render(self, text: str) -> np.ndarray:
        """A uint8 grey image of ``text`` on a plain background."""
        rng = self.rng
        style = rng.choice(self.styles)
        size = rng.randint(24, 48)
        font = _font(rng.choice(self.fonts), size)
        left, top, right, bottom = font.getbbox(text)
        pad_x, pad_y = rng.randint(2, size // 2), rng.randint(2, size // 3)
        width, height = max(1, right - left) + 2 * pad_x, max(1, bottom - top) + 2 * pad_y
        image = Image.new("L", (width, height), int(np.clip(style.paper + rng.uniform(-15, 15), 0, 255)))
        ink = int(np.clip(style.ink + rng.uniform(-20, 20), 0, 255))
        ImageDraw.Draw(image).text((pad_x - left, pad_y - top), text, fill=ink, font=font)
        blur = style.blur * rng.uniform(0.5, 1.5) * size / 32
        if blur > 0.2:
            image = image.filter(ImageFilter.GaussianBlur(blur))
        array = np.asarray(image, dtype=np.float32)
        if style.noise > 0.5:
            array = array + np.random.default_rng(rng.randrange(1 << 30)).normal(0, style.noise, array.shape)
        return np.clip(array, 0, 255).astype(np.uint8)


class TextSampler:
    """Random strings matching the training labels' alphabet and length distribution."""

    def __init__(self, labels: list[str], seed: int, alphabet: str | None = None) -> None:
        self.labels = labels
        self.alphabet = alphabet or "".join(sorted(set("".join(labels)) - {" "})) or "0123456789"
        self.lengths = [len(label) for label in labels]
        self.space_rate = sum(label.count(" ") for label in labels) / max(1, sum(self.lengths))
        self.rng = random.Random(seed)

    def sample(self) -> str:
        """Half the time a training label, half a random string of a real label's length."""
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(self.labels)
        n = rng.choice(self.lengths)
        chars = [" " if rng.random() < self.space_rate else rng.choice(self.alphabet) for _ in range(n)]
        text = "".join(chars).strip()
        return text or rng.choice(self.alphabet)
