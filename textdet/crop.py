"""Cutting a detected line out of its page, straightened, with a margin."""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Pixels of context kept around a line on each side, as a fraction of its height.
DEFAULT_MARGIN = 0.1
#: The recogniser refuses crops wider than this many times their height; longer lines get more height.
MAX_LINE_ASPECT = 90.0


def box_size(box: np.ndarray) -> tuple[float, float]:
    """(width, height) of a box: its mean top/bottom edge length and mean left/right edge length."""
    top, right, bottom, left = (float(np.linalg.norm(box[(i + 1) % 4] - box[i])) for i in range(4))
    return (top + bottom) / 2, (left + right) / 2


def is_upright(box: np.ndarray) -> bool:
    """True when the box is an axis-aligned rectangle (within a pixel), so a plain slice cuts it out."""
    return bool(abs(box[0, 1] - box[1, 1]) < 1 and abs(box[2, 1] - box[3, 1]) < 1
                and abs(box[0, 0] - box[3, 0]) < 1 and abs(box[1, 0] - box[2, 0]) < 1)


def crop_line(gray: np.ndarray, box: np.ndarray, margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, float]:
    """The line inside ``box`` as an upright grey image, and the margin (pixels) added on its left.

    Upright boxes are sliced (clipped to the page); rotated ones are warped to
    a rectangle of their own width and height, so tilted text comes out level.
    """
    width, height = box_size(box)
    pad = margin * height
    # Keep the crop within the recogniser's aspect-ratio limit by giving very long lines more height.
    pad_y = max(pad, ((width + 2 * pad) / MAX_LINE_ASPECT - height) / 2)
    if is_upright(box):
        rows, cols = gray.shape
        left = max(0, math.floor(box[:, 0].min() - pad))
        right = min(cols, math.ceil(box[:, 0].max() + pad))
        top = max(0, math.floor(box[:, 1].min() - pad_y))
        bottom = min(rows, math.ceil(box[:, 1].max() + pad_y))
        crop = gray[top:bottom, left:right]
        if crop.size == 0:
            crop = np.full((1, 1), 255, np.uint8)
        return within_aspect(np.ascontiguousarray(crop)), float(box[:, 0].min() - left)
    along = (box[1] - box[0]) / max(width, 1e-6)
    across = (box[3] - box[0]) / max(height, 1e-6)
    source = np.array([
        box[0] - pad * along - pad_y * across,
        box[1] + pad * along - pad_y * across,
        box[2] + pad * along + pad_y * across,
        box[3] - pad * along + pad_y * across,
    ], np.float32)
    out_w, out_h = max(1, round(width + 2 * pad)), max(1, round(height + 2 * pad_y))
    target = np.array([[0, 0], [out_w, 0], [out_w, out_h], [0, out_h]], np.float32)
    matrix = cv2.getPerspectiveTransform(source, target)
    warped = cv2.warpPerspective(gray, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return within_aspect(warped), pad


def within_aspect(crop: np.ndarray) -> np.ndarray:
    """The crop, edge-padded (rows above and below, or columns on the right) to at most ``MAX_LINE_ASPECT``:1.

    A line flush with the page's edge cannot borrow height from the page, and a
    sliver of a box can be far taller than wide; either would be refused by the recogniser.
    """
    rows, cols = crop.shape
    if cols > MAX_LINE_ASPECT * rows:
        extra = math.ceil(cols / MAX_LINE_ASPECT) - rows
        return cv2.copyMakeBorder(crop, extra // 2, extra - extra // 2, 0, 0, cv2.BORDER_REPLICATE)
    if rows > MAX_LINE_ASPECT * cols:
        return cv2.copyMakeBorder(crop, 0, 0, 0, math.ceil(rows / MAX_LINE_ASPECT) - cols, cv2.BORDER_REPLICATE)
    return crop
