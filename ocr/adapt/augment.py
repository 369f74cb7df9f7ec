"""Contrast and geometry augmentation of grey text lines (albumentations), at the model's input height.

Lines are first scaled to the model's input height, so every pixel amount
below means the same thing for a 13-pixel receipt line and a 120-pixel plate.
Geometry never moves text out of the frame: affine and perspective enlarge the
canvas instead of cropping, shear is horizontal only, rotation shrinks as lines
get longer (a 3-degree turn of a 20:1 line lifts its ends by half its height),
and crops take at most a few pixels of margin. A transform that cut off a
character would leave its label wrong.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from crnn.preprocess import resize_to_height

#: Lines wider than this many heights get only a slight rotation.
LONG_LINE_ASPECT = 4.0
#: Images at most this many heights wide hold a glyph or two (a digit box): they get more rotation and scale.
GLYPH_ASPECT = 1.5
GLYPH_ROTATE = 12.0


def _strokes(height: int, seed: int) -> A.Compose:
    """Handwriting-like variation for glyph images: elastic distortion (Simard et al., 2003, scaled from their
    28-pixel digits to ``height``) and thicker or thinner strokes."""
    return A.Compose(
        [
            A.ElasticTransform(alpha=34.0 * height / 28, sigma=4.0 * height / 28, border_mode=cv2.BORDER_REPLICATE,
                               p=0.5),
            A.OneOf([A.Morphological(scale=(2, 3), operation="erosion"),
                     A.Morphological(scale=(2, 3), operation="dilation")], p=0.4),
        ],
        seed=seed,
    )


def _geometry(height: int, rotate: float, seed: int, scale: tuple[float, float] = (0.92, 1.05)) -> A.Compose:
    margin = max(1, height // 32)
    return A.Compose(
        [
            A.CropAndPad(px=((-margin, height // 10), (-margin, height // 4), (-margin, height // 10),
                             (-margin, height // 4)),
                         keep_size=False, border_mode=cv2.BORDER_REPLICATE, p=0.5),
            A.Affine(scale=scale, keep_ratio=True, rotate=(-rotate, rotate), shear={"x": (-8, 8), "y": 0},
                     fit_output=True, border_mode=cv2.BORDER_REPLICATE, p=0.5),
            A.Perspective(scale=(0.01, 0.03), fit_output=True, border_mode=cv2.BORDER_REPLICATE, p=0.3),
        ],
        seed=seed,
    )


def _appearance(seed: int) -> A.Compose:
    return A.Compose(
        [
            A.OneOf([A.RandomBrightnessContrast((-0.3, 0.3), (-0.4, 0.3)), A.RandomGamma((60, 160)),
                     A.CLAHE(clip_limit=(1, 3))], p=0.8),
            A.InvertImg(p=0.1),
            A.Downscale(scale_range=(0.25, 0.6), p=0.2),
            A.OneOf([A.GaussianBlur(sigma_limit=(0.5, 2.0)), A.MotionBlur(blur_limit=(3, 7))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.06), p=0.3),
            A.ImageCompression(quality_range=(30, 90), p=0.3),
        ],
        seed=seed,
    )


class Augmenter:
    """Random, label-preserving variants of grey text lines, scaled to ``height`` rows (seeded)."""

    def __init__(self, seed: int, height: int) -> None:
        self.height = height
        self._short = _geometry(height, 3.0, seed)
        self._long = _geometry(height, 0.5, seed + 1)
        self._glyph = _geometry(height, GLYPH_ROTATE, seed + 3, (0.8, 1.1))
        self._strokes = _strokes(height, seed + 4)
        self._appearance = _appearance(seed + 2)

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        """One augmented copy of a uint8 grey image, about ``height`` rows high (never empty)."""
        line = resize_to_height(gray, self.height)
        aspect = line.shape[1] / line.shape[0]
        geometry = self._glyph if aspect <= GLYPH_ASPECT else self._short if aspect <= LONG_LINE_ASPECT else self._long
        if aspect <= GLYPH_ASPECT:
            line = self._strokes(image=line)["image"]
        out = self._appearance(image=geometry(image=line)["image"])["image"]
        if out.ndim == 3:
            out = out[:, :, 0]
        return out if out.size and min(out.shape) > 0 else line
