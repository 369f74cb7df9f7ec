"""Contrast and geometry augmentation of grey text images (albumentations)."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np


def build_augmenter(seed: int) -> A.Compose:
    """Brightness/contrast, gamma, CLAHE, inversion, blur, noise, JPEG, small affine/perspective, crop/pad."""
    return A.Compose(
        [
            A.CropAndPad(percent=(-0.06, 0.06), keep_size=False, border_mode=cv2.BORDER_REPLICATE, p=0.5),
            A.Affine(scale=(0.92, 1.05), rotate=(-3, 3), shear=(-6, 6), border_mode=cv2.BORDER_REPLICATE,
                     fit_output=False, p=0.5),
            A.Perspective(scale=(0.01, 0.04), border_mode=cv2.BORDER_REPLICATE, p=0.3),
            A.OneOf([A.RandomBrightnessContrast((-0.3, 0.3), (-0.4, 0.3)), A.RandomGamma((60, 160)),
                     A.CLAHE(clip_limit=(1, 3))], p=0.8),
            A.InvertImg(p=0.1),
            A.OneOf([A.GaussianBlur(sigma_limit=(0.3, 1.2)), A.MotionBlur(blur_limit=(3, 5))], p=0.3),
            A.GaussNoise(std_range=(0.01, 0.06), p=0.3),
            A.ImageCompression(quality_range=(30, 90), p=0.3),
        ],
        seed=seed,
    )


def augment(augmenter: A.Compose, gray: np.ndarray) -> np.ndarray:
    """One augmented copy of a uint8 grey image (never empty)."""
    out = augmenter(image=gray)["image"]
    if out.ndim == 3:
        out = out[:, :, 0]
    return out if out.size and min(out.shape) > 0 else gray
