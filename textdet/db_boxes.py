"""From a DB detector's probability map to text-line boxes: pure numpy/OpenCV, no model.

Differentiable binarization (Liao et al., AAAI 2020) trains the network to mark
each text line's *shrunk* core; at inference the core is thresholded and grown
back by the distance the labels were shrunk by. Every threshold is a field of
:class:`DBThresholds`:

1. **Binary map.** A pixel is text when its probability exceeds ``binary``;
   with ``dilate``, the map is dilated by a 2x2 square (joins cores split by a
   pixel).
2. **Candidates.** Each outer contour of the binary map (at most
   ``max_candidates``) is wrapped in its minimum-area rectangle; one whose
   short side is under ``min_side`` map pixels is noise.
3. **Score.** The rectangle's mean probability (over the map pixels inside it)
   must reach ``box``.
4. **Unclip.** The rectangle grows on every side by ``area * unclip_ratio /
   perimeter`` (the shrink rule of the DB labels, inverted). For a rectangle the
   grown outline's minimum-area rectangle is the same rectangle with each side
   longer by twice that distance, so no polygon clipping library is needed.
   Grown boxes whose short side is under ``min_side + 2`` are dropped.

A box is a ``(4, 2)`` float32 array of corners ``(x, y)``, clockwise from the
top-left, in map pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from textdet.boxes import order_corners


@dataclass(frozen=True)
class DBThresholds:
    """How a DB probability map becomes line boxes (PaddleOCR's published inference defaults)."""

    #: Probability above which a map pixel is text.
    binary: float = 0.3
    #: A box's mean probability must reach this.
    box: float = 0.5
    #: Growth distance = area * unclip_ratio / perimeter of the shrunk box.
    unclip_ratio: float = 1.6
    #: Boxes whose short side is under this many map pixels (before growing; + 2 after) are noise.
    min_side: float = 3.0
    #: At most this many contours are considered.
    max_candidates: int = 1000
    #: Dilate the binary map by a 2x2 square first.
    dilate: bool = True


def mean_inside(prob: np.ndarray, corners: np.ndarray) -> float:
    """The mean of ``prob`` over the pixels inside the quadrilateral ``corners`` (map pixels)."""
    rows, cols = prob.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [cols - 1, rows - 1])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [cols - 1, rows - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def db_boxes(prob: np.ndarray, thresholds: DBThresholds = DBThresholds()) -> list[tuple[np.ndarray, float]]:
    """Line boxes (map pixels) and their scores from a 2-D probability map."""
    if prob.ndim != 2:
        raise ValueError(f"the probability map must be 2-D, got shape {prob.shape}")
    binary = (prob > thresholds.binary).astype(np.uint8)
    if thresholds.dilate:
        binary = cv2.dilate(binary, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for contour in contours[: thresholds.max_candidates]:
        centre, (width, height), angle = cv2.minAreaRect(contour)
        if min(width, height) < thresholds.min_side:
            continue
        score = mean_inside(prob, cv2.boxPoints((centre, (width, height), angle)))
        if score < thresholds.box:
            continue
        grow = width * height * thresholds.unclip_ratio / (2 * (width + height))
        width, height = width + 2 * grow, height + 2 * grow
        if min(width, height) < thresholds.min_side + 2:
            continue
        found.append((order_corners(cv2.boxPoints((centre, (width, height), angle))), score))
    return found
