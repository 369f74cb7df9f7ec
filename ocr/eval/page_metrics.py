"""Scoring whole-page reading: line detection (IoU matching) and end-to-end words (SROIE task 2 style)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: A detected box matches an annotated one when their intersection over union is at least this.
IOU_THRESHOLD = 0.5


def words(text: str, cased: bool = False) -> Counter[str]:
    """The whitespace-separated tokens of ``text`` as a multiset (lower-cased unless ``cased``)."""
    return Counter(text.split() if cased else text.lower().split())


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two quadrilaterals (their convex hulls)."""
    hull_a = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 1, 2))
    hull_b = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 1, 2))
    area_a, area_b = cv2.contourArea(hull_a), cv2.contourArea(hull_b)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(hull_a, hull_b)
    return float(inter / (area_a + area_b - inter)) if inter > 0 else 0.0


def match_boxes(predicted: Sequence[np.ndarray], truth: Sequence[np.ndarray], threshold: float = IOU_THRESHOLD
                ) -> list[tuple[int, int]]:
    """One-to-one matches ``(predicted index, truth index)`` with IoU >= ``threshold``, best pairs first."""
    pairs = []
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            if _overlap(p, t):
                iou = box_iou(p, t)
                if iou >= threshold:
                    pairs.append((iou, i, j))
    used_p, used_t, matches = set(), set(), []
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j))
    return matches


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Cheap bounding-box test before the polygon intersection."""
    return bool(a[:, 0].min() < b[:, 0].max() and b[:, 0].min() < a[:, 0].max()
                and a[:, 1].min() < b[:, 1].max() and b[:, 1].min() < a[:, 1].max())


@dataclass
class Tally:
    """Running counts over pages: matched / predicted / expected for boxes and words."""

    boxes_matched: int = 0
    boxes_predicted: int = 0
    boxes_expected: int = 0
    words_matched: int = 0
    words_predicted: int = 0
    words_expected: int = 0
    cased_matched: int = 0
    cased_predicted: int = 0
    cased_expected: int = 0

    def add_page(self, predicted_boxes: Sequence[np.ndarray], predicted_texts: Sequence[str],
                 truth_boxes: Sequence[np.ndarray], truth_texts: Sequence[str], dont_care: Sequence[bool]) -> None:
        """Count one page. Predictions over a don't-care region are set aside before counting."""
        cared = [b for b, skip in zip(truth_boxes, dont_care) if not skip]
        ignored = [b for b, skip in zip(truth_boxes, dont_care) if skip]
        over_ignored = {i for i, _ in match_boxes(predicted_boxes, ignored)} if ignored else set()
        kept = [i for i in range(len(predicted_boxes)) if i not in over_ignored]
        self.boxes_matched += len(match_boxes([predicted_boxes[i] for i in kept], cared))
        self.boxes_predicted += len(kept)
        self.boxes_expected += len(cared)
        truth = " ".join(t for t, skip in zip(truth_texts, dont_care) if not skip)
        guess = " ".join(predicted_texts[i] for i in kept)
        for cased in (False, True):
            found, wanted = words(guess, cased), words(truth, cased)
            matched, predicted, expected = sum((found & wanted).values()), sum(found.values()), sum(wanted.values())
            if cased:
                self.cased_matched += matched
                self.cased_predicted += predicted
                self.cased_expected += expected
            else:
                self.words_matched += matched
                self.words_predicted += predicted
                self.words_expected += expected

    def summary(self) -> dict[str, float]:
        """Precision, recall and F1 for boxes and words (micro-averaged over all pages)."""
        word_p, word_r, word_f = _prf(self.words_matched, self.words_predicted, self.words_expected)
        cased_p, cased_r, cased_f = _prf(self.cased_matched, self.cased_predicted, self.cased_expected)
        det_p, det_r, det_f = _prf(self.boxes_matched, self.boxes_predicted, self.boxes_expected)
        return {
            "word_precision": word_p, "word_recall": word_r, "word_f1": word_f,
            "word_precision_cased": cased_p, "word_recall_cased": cased_r, "word_f1_cased": cased_f,
            "det_precision": det_p, "det_recall": det_r, "det_f1": det_f,
        }


def _prf(matched: int, predicted: int, expected: int) -> tuple[float, float, float]:
    precision = matched / predicted if predicted else 0.0
    recall = matched / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
