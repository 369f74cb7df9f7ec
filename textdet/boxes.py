"""From CRAFT's score maps to text lines: pure numpy/OpenCV functions, no model.

Pipeline (every threshold is a field of :class:`BoxThresholds` or :class:`LineGrouping`):

1. **Words.** A map pixel is "text" when its region score exceeds ``low_text``
   and "link" when its affinity score exceeds ``link``. Connected components
   (4-connectivity) of text-or-link pixels are candidate words; one smaller
   than ``min_area`` map pixels, or whose region score never reaches ``text``,
   is dropped. Each word's pixels, minus link-only ones, are dilated in
   proportion to the word's thickness and wrapped in their minimum-area
   rectangle (an axis-aligned one when that rectangle is nearly square, where
   its angle means nothing).
2. **Lines.** Near-horizontal words (top edge slope under ``max_slope``) on the
   same row (centres within ``max_center_shift`` of the row's height, heights
   within ``max_height_ratio``) and close together (gap under ``max_gap`` of
   the height) are merged into one axis-aligned line box. Tilted words stay
   as their own rotated boxes, unless they continue each other along their
   common direction (angles within ``max_angle_difference``, the same row
   and gap rules measured along and across that direction): then they are
   merged into one rotated line. Short squarish words (one or two
   characters, whose box has no reliable angle) may join a tilted line.
3. **Reading order.** Lines are grouped into rows top to bottom (a line whose
   vertical centre falls inside the current row's span joins it) and read
   left to right within a row.

A box is a ``(4, 2)`` float array of corners ``(x, y)``, clockwise from the
top-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class BoxThresholds:
    """Score thresholds for turning CRAFT's maps into word boxes.

    CRAFT publishes 0.7 / 0.4 / 0.4 and 10 pixels; the lower values here find
    more thin and small characters on scanned receipts (docs/studies/detection.md).
    """

    #: A word's region score must reach this somewhere.
    text: float = 0.5
    #: Region score above which a pixel belongs to a character.
    low_text: float = 0.3
    #: Affinity score above which a pixel joins two characters.
    link: float = 0.4
    #: Components smaller than this many map pixels are noise.
    min_area: int = 4


@dataclass(frozen=True)
class LineGrouping:
    """When neighbouring word boxes are merged into one line (lengths relative to the box height)."""

    #: Words whose top edge is steeper than this (|dy/dx|) are kept as rotated boxes.
    max_slope: float = 0.1
    #: Words whose vertical centres differ by less than this share a row.
    max_center_shift: float = 0.5
    #: Words whose heights differ by more than this fraction do not share a row.
    max_height_ratio: float = 0.5
    #: Words on a row whose horizontal gap is below this are merged into one line.
    max_gap: float = 1.0
    #: Tilted words whose directions differ by less than this (radians) may share a tilted line.
    max_angle_difference: float = 0.1


def order_corners(points: np.ndarray) -> np.ndarray:
    """Four corners sorted clockwise (in image coordinates, y down) starting from the top-left one."""
    points = np.asarray(points, dtype=np.float32).reshape(4, 2)
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    points = points[np.argsort(angles)]  # increasing angle is clockwise when y points down
    first = int(np.argmin(points.sum(axis=1)))
    return np.roll(points, -first, axis=0)


def word_boxes(region: np.ndarray, affinity: np.ndarray, thresholds: BoxThresholds = BoxThresholds()
               ) -> list[np.ndarray]:
    """Word boxes in map coordinates from a region map and an affinity map of the same shape."""
    if region.shape != affinity.shape or region.ndim != 2:
        raise ValueError(f"region {region.shape} and affinity {affinity.shape} must be 2-D maps of one shape")
    text = region > thresholds.low_text
    link = affinity > thresholds.link
    count, labels, stats, _ = cv2.connectedComponentsWithStats((text | link).astype(np.uint8), connectivity=4)
    link_only = link & ~text
    height, width = region.shape
    boxes = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < thresholds.min_area:
            continue
        window = (slice(y, y + h), slice(x, x + w))
        mine = labels[window] == k
        if region[window][mine].max() < thresholds.text:
            continue
        # Grow the character pixels by about the word's stroke thickness, so the box covers whole glyphs.
        grow = int(math.sqrt(area * min(w, h) / (w * h)) * 2)
        x0, y0 = max(0, x - grow), max(0, y - grow)
        x1, y1 = min(width, x + w + grow + 1), min(height, y + h + grow + 1)
        segment = ((labels[y0:y1, x0:x1] == k) & ~link_only[y0:y1, x0:x1]).astype(np.uint8)
        if grow:
            segment = cv2.dilate(segment, np.ones((1 + grow, 1 + grow), np.uint8))
        ys, xs = np.nonzero(segment)
        if xs.size == 0:
            continue
        points = np.column_stack([xs + x0, ys + y0]).astype(np.float32)
        rect = cv2.minAreaRect(points)
        rect_w, rect_h = rect[1]
        if abs(rect_w - rect_h) <= 0.1 * max(rect_w, rect_h, 1e-6):
            left, top = points.min(axis=0)
            right, bottom = points.max(axis=0) + 1
            corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
        else:
            corners = cv2.boxPoints(rect)
        boxes.append(order_corners(corners))
    return boxes


def _is_horizontal(box: np.ndarray, max_slope: float) -> bool:
    dx, dy = box[1] - box[0]
    return dx > 0 and abs(dy) <= max_slope * dx


def _is_squarish(box: np.ndarray) -> bool:
    """A short word (one or two characters) whose box is at most 1.5 times longer one way than the other."""
    width, height = (float(np.linalg.norm(box[1] - box[0])), float(np.linalg.norm(box[3] - box[0])))
    return max(width, height) <= 1.5 * max(min(width, height), 1e-6)


def _geometry(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Centre, unit direction along the top edge, width and height of a box."""
    along = box[1] - box[0]
    width = float(np.linalg.norm(along))
    return box.mean(axis=0), along / max(width, 1e-6), width, float(np.linalg.norm(box[3] - box[0]))


def _same_tilted_line(a: np.ndarray, b: np.ndarray, grouping: LineGrouping, loose: bool) -> bool:
    """Whether ``b`` continues tilted word ``a`` along its direction (``loose``: ``b`` is squarish, no own angle)."""
    centre_a, along_a, width_a, height_a = _geometry(a)
    centre_b, along_b, width_b, height_b = _geometry(b)
    if not loose:
        angle = float(np.arccos(np.clip(abs(float(along_a @ along_b)), -1.0, 1.0)))
        if angle > grouping.max_angle_difference:
            return False
    if abs(height_a - height_b) > grouping.max_height_ratio * max(height_a, height_b):
        return False
    offset = centre_b - centre_a
    across = abs(float(offset @ np.array([-along_a[1], along_a[0]])))
    gap = abs(float(offset @ along_a)) - (width_a + width_b) / 2
    height = max(height_a, height_b)
    return across < grouping.max_center_shift * height and gap < grouping.max_gap * height


def _tilted_lines(boxes: list[np.ndarray], grouping: LineGrouping) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Tilted words joined along their direction (squarish words may join them); returns (lines, untouched)."""
    tilted = [i for i, b in enumerate(boxes) if not _is_horizontal(b, grouping.max_slope)]
    if not tilted:
        return [], boxes
    squarish = [i for i, b in enumerate(boxes) if i not in set(tilted) and _is_squarish(b)]
    group = list(range(len(boxes)))  # union-find parents

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for k, i in enumerate(tilted):
        for j in tilted[k + 1:] + squarish:
            if _same_tilted_line(boxes[i], boxes[j], grouping, loose=j in squarish):
                group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i in tilted + squarish:
        members.setdefault(root(i), []).append(i)
    lines, used = [], set()
    for indices in members.values():
        if not any(i in tilted for i in indices):
            continue  # squarish words alone: left to the row grouping
        used.update(indices)
        if len(indices) == 1:
            lines.append(boxes[indices[0]])
        else:
            corners = np.concatenate([boxes[i] for i in indices]).astype(np.float32)
            lines.append(order_corners(cv2.boxPoints(cv2.minAreaRect(corners))))
    return lines, [b for i, b in enumerate(boxes) if i not in used]


def group_lines(boxes: list[np.ndarray], grouping: LineGrouping = LineGrouping()) -> list[np.ndarray]:
    """Merge word boxes into lines: tilted words along their direction, near-horizontal ones by rows."""
    lines, rest = _tilted_lines(boxes, grouping)
    flat = [b for b in rest if _is_horizontal(b, grouping.max_slope)]
    # Axis-aligned extents: (left, top, right, bottom).
    extents = sorted(
        ((float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 0].max()), float(b[:, 1].max())) for b in flat),
        key=lambda e: (e[1] + e[3]) / 2,
    )
    rows: list[list[tuple[float, float, float, float]]] = []
    for extent in extents:
        centre, height = (extent[1] + extent[3]) / 2, extent[3] - extent[1]
        if rows:
            row = rows[-1]
            row_centre = sum((e[1] + e[3]) / 2 for e in row) / len(row)
            row_height = sum(e[3] - e[1] for e in row) / len(row)
            if (abs(centre - row_centre) < grouping.max_center_shift * row_height
                    and abs(height - row_height) < grouping.max_height_ratio * row_height):
                row.append(extent)
                continue
        rows.append([extent])
    for row in rows:
        row.sort()
        merged = list(row[0])
        for left, top, right, bottom in row[1:]:
            height = max(merged[3] - merged[1], bottom - top)
            if left - merged[2] < grouping.max_gap * height:
                merged = [merged[0], min(merged[1], top), max(merged[2], right), max(merged[3], bottom)]
            else:
                lines.append(_rectangle(*merged))
                merged = [left, top, right, bottom]
        lines.append(_rectangle(*merged))
    return lines


def _rectangle(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)


def reading_order(boxes: list[np.ndarray]) -> list[int]:
    """Indices of ``boxes`` in reading order: rows top to bottom, left to right within a row."""
    by_top = sorted(range(len(boxes)), key=lambda i: (float(boxes[i][:, 1].min()), float(boxes[i][:, 0].min())))
    rows: list[list[int]] = []
    row_bottom = -math.inf
    for i in by_top:
        centre = float(boxes[i][:, 1].mean())
        if rows and centre <= row_bottom:
            rows[-1].append(i)
            row_bottom = max(row_bottom, float(boxes[i][:, 1].max()))
        else:
            rows.append([i])
            row_bottom = float(boxes[i][:, 1].max())
    return [i for row in rows for i in sorted(row, key=lambda j: float(boxes[j][:, 0].min()))]


@dataclass(frozen=True)
class GlyphRecovery:
    """Finding lone characters CRAFT misses (a "1" in a quantity column, a spaced ":"), from the ink itself.

    Dark ink outside every detected line, joined vertically by ``join`` of the
    typical line height (so a colon's two dots are one mark), is a candidate
    when its height is between ``min_height`` and ``max_height`` of the typical
    line height, it is at most ``max_aspect`` times wider than tall, and a
    detected line shares its row. Heights are those of upright line boxes.
    A candidate is kept only when the recogniser reads it, with confidence
    at least ``min_confidence``, as letters or digits or one of ``keep_marks``
    (other marks are mostly specks, rules and smudges).
    """

    min_height: float = 0.4
    max_height: float = 1.0
    max_aspect: float = 1.2
    join: float = 0.3
    #: Ink within this fraction of a line's height around its box belongs to that line.
    clearance: float = 0.2
    min_confidence: float = 0.5
    keep_marks: str = ":"
    #: At most this many candidates per page are read.
    max_candidates: int = 200

    def keeps(self, text: str, confidence: float) -> bool:
        """Whether a candidate read as ``text`` is kept."""
        return confidence >= self.min_confidence and (text.isalnum() or (len(text) == 1 and text in self.keep_marks))


def stray_glyphs(gray: np.ndarray, lines: list[np.ndarray], recovery: GlyphRecovery = GlyphRecovery()
                 ) -> list[np.ndarray]:
    """Boxes around lone characters outside ``lines`` (page pixels); see :class:`GlyphRecovery`."""
    upright = [b for b in lines if _is_horizontal(b, 0.1)]
    if not upright:
        return []
    spans = np.array([(b[:, 1].min(), b[:, 1].max()) for b in upright], np.float32)
    typical = float(np.median(spans[:, 1] - spans[:, 0]))
    if typical < 4:
        return []
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    rows, cols = gray.shape
    for b in lines:
        pad = recovery.clearance * float(b[:, 1].max() - b[:, 1].min())
        x0, y0 = (max(0, math.floor(v - pad)) for v in b.min(axis=0))
        x1, y1 = math.ceil(b[:, 0].max() + pad), math.ceil(b[:, 1].max() + pad)
        ink[y0:min(rows, y1), x0:min(cols, x1)] = 0
    joined = cv2.dilate(ink, np.ones((max(1, round(recovery.join * typical)), 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    found = []
    for x, y, w, h, _ in stats[1:count]:
        if not recovery.min_height * typical <= h <= recovery.max_height * typical or w > recovery.max_aspect * h:
            continue
        overlap = np.minimum(spans[:, 1], y + h) - np.maximum(spans[:, 0], y)
        if not (overlap >= 0.5 * h).any():
            continue
        found.append(_rectangle(float(x), float(y), float(x + w), float(y + h)))
    # A textured photo can throw up hundreds of marks; each costs a reading, so keep the page's first few.
    return found[: recovery.max_candidates]
