"""Reading whole pages: detect lines, cut them out straightened, read them all in shared batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from crnn.constrained import Constraint
from crnn.decode import CharResult, Result
from crnn.preprocess import PreparedImage, prepare
from crnn.recognizer import Recognizer
from textdet.crop import DEFAULT_MARGIN, crop_line
from textdet.detector import Detector
from textdet.lines import darken_ink, tidy_spacing

#: Lines read with confidence below this are read again with darkened ink; the more confident reading is kept.
DEFAULT_ENHANCE_BELOW = 0.6


@dataclass(frozen=True)
class Line:
    """One text line found on a page.

    ``box`` holds the four corners ``(x, y)`` in page pixels, clockwise from
    the top-left. Character spans (``chars``) are distances along the line
    from its left edge (corners 0 to 3), in page pixels: for an upright line,
    add the box's left x to get page columns.
    """

    box: list[tuple[int, int]]
    text: str
    confidence: float
    chars: list[CharResult] = field(default_factory=list)
    rejected: bool = False


@dataclass(frozen=True)
class Cut:
    """A line cut out of its page for the recogniser, and how to map its reading back."""

    page: int
    box: np.ndarray
    crop: np.ndarray
    image: PreparedImage
    left_margin: float


def cut_lines(gray: np.ndarray, boxes: Sequence[np.ndarray], height: int, page: int = 0,
              margin: float = DEFAULT_MARGIN) -> list[Cut]:
    """Every box of one page cut out, straightened and resized for a recogniser of input ``height``."""
    cuts = []
    for box in boxes:
        crop, left = crop_line(gray, box, margin)
        cuts.append(Cut(page, box, crop, prepare(crop, height), left))
    return cuts


def to_line(cut: Cut, result: Result) -> Line:
    """A recogniser's reading of a cut as a page line (character spans measured from the line's left edge)."""
    def along(x: int) -> int:
        return max(0, round(x - cut.left_margin))

    chars = [replace(c, x_start=along(c.x_start), x_end=along(c.x_end)) for c in result.chars]
    box = [(round(float(x)), round(float(y))) for x, y in cut.box]
    return Line(box=box, text=result.text, confidence=result.confidence, chars=chars, rejected=result.rejected)


class PageReader:
    """Detector + recogniser: whole images in, lines out.

    All lines of all pages in one call are read together through the
    recogniser's width-bucketed batches. Lines read with confidence below
    ``enhance_below`` are read again with darkened ink (:func:`darken_ink`) and
    the more confident reading is kept; unconstrained readings then lose the
    spaces the recogniser invents before stops and commas (:func:`tidy_spacing`).
    """

    def __init__(self, recognizer: Recognizer, detector: Detector, margin: float = DEFAULT_MARGIN,
                 enhance_below: float | None = DEFAULT_ENHANCE_BELOW) -> None:
        self.recognizer = recognizer
        self.detector = detector
        self.margin = margin
        self.enhance_below = enhance_below or None

    def cut(self, gray: np.ndarray, page: int = 0) -> list[Cut]:
        """Detect the lines of one grey page and cut them out for the recogniser."""
        return cut_lines(gray, self.detector.detect(gray), self.recognizer.input_height, page, self.margin)

    def read_cuts(self, cuts: Sequence[Cut], allowlist: str | None = None, constraint: Constraint | None = None,
                  min_confidence: float | None = None) -> list[Line]:
        """Read lines already cut out (of any pages), in one set of batches."""
        results = self.recognizer.recognize_prepared([c.image for c in cuts], allowlist, constraint)
        if self.enhance_below:
            unsure = [i for i, r in enumerate(results) if r.confidence < self.enhance_below]
            darker = [prepare(darken_ink(cuts[i].crop), self.recognizer.input_height) for i in unsure]
            for i, other in zip(unsure, self.recognizer.recognize_prepared(darker, allowlist, constraint)):
                if other.confidence > results[i].confidence:
                    results[i] = other
        if constraint is None:
            results = [tidy_spacing(r) for r in results]
        if min_confidence is not None:
            results = [r if r.confidence >= min_confidence else replace(r, text="", chars=[], rejected=True)
                       for r in results]
        return [to_line(cut, result) for cut, result in zip(cuts, results)]

    def read(self, grays: Sequence[np.ndarray], allowlist: str | None = None, constraint: Constraint | None = None,
             min_confidence: float | None = None) -> list[list[Line]]:
        """The lines of each grey page, in reading order; a page without text gives an empty list."""
        cuts = [cut for page, gray in enumerate(grays) for cut in self.cut(gray, page)]
        pages: list[list[Line]] = [[] for _ in grays]
        for cut, line in zip(cuts, self.read_cuts(cuts, allowlist, constraint, min_confidence)):
            pages[cut.page].append(line)
        return pages
