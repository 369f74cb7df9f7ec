"""Reading whole pages: detect lines, cut them out straightened, read them all in shared batches.

The work is split into steps so that a caller that owns its own batching
(the server's dynamic batcher) can run the recogniser itself:

1. :meth:`PageReader.cut` — detect one page's lines (and lone-glyph candidates) and cut them out;
2. read every cut's image; then read :func:`darkened` copies of those below ``enhance_below``;
3. :meth:`PageReader.finish` — keep the better reading of each, tidy spacing, drop
   unreadable glyph candidates, apply the minimum confidence, sort into reading order.

:meth:`PageReader.read` does all three with the ``Recognizer``'s own batches (:meth:`PageReader.read_cuts`
does steps 2 and 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from crnn.constrained import Constraint
from crnn.decode import CharResult, Result, reject_below
from crnn.preprocess import PreparedImage, prepare
from crnn.recognizer import Recognizer
from textdet.boxes import reading_order
from textdet.crop import DEFAULT_MARGIN, crop_line
from textdet.detector import Detector
from textdet.lines import darken_ink, tidy_spacing

#: Per recogniser: lines read with confidence below this are read again with darkened ink, and the more
#: confident reading is kept. Measured on the shared receipts (docs/pages.md): it lifts english_g2's word F1, and
#: lowers PP-OCRv6 small's (0.893 -> 0.887 on the receipts' first half) while costing it 0.34 s a page.
DEFAULT_ENHANCE_BELOW: dict[str, float] = {"english_g2": 0.6}


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


def page_text(lines: Sequence[Line]) -> str:
    """A page's text: its lines' texts in reading order, one per row (rejected lines left out)."""
    return "\n".join(line.text for line in lines if not line.rejected)


def page_confidence(lines: Sequence[Line]) -> float:
    """A page's confidence: its least confident line's (0 when no line was found)."""
    return min((line.confidence for line in lines), default=0.0)


@dataclass(frozen=True)
class Cut:
    """A line cut out of its page for the recogniser, and how to map its reading back.

    ``glyph`` marks a lone-character candidate, kept only if it reads as one (see ``GlyphRecovery``).
    """

    page: int
    box: np.ndarray
    crop: np.ndarray
    image: PreparedImage
    left_margin: float
    glyph: bool = False


def cut_lines(gray: np.ndarray, boxes: Sequence[np.ndarray], height: int, page: int = 0,
              margin: float = DEFAULT_MARGIN, glyph: bool = False) -> list[Cut]:
    """Every box of one page cut out, straightened and resized for a recogniser of input ``height``."""
    cuts = []
    for box in boxes:
        crop, left = crop_line(gray, box, margin)
        cuts.append(Cut(page, box, crop, prepare(crop, height), left, glyph))
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
    ``enhance_below`` (default: the recogniser's entry in
    ``DEFAULT_ENHANCE_BELOW``, else never; 0: never) are read again with
    darkened ink (:func:`darken_ink`) and the more confident reading is kept;
    unconstrained readings then lose the spaces the recogniser invents before
    stops and commas (:func:`tidy_spacing`).
    """

    def __init__(self, recognizer: Recognizer, detector: Detector, margin: float = DEFAULT_MARGIN,
                 enhance_below: float | None = None) -> None:
        self.recognizer = recognizer
        self.detector = detector
        self.margin = margin
        if enhance_below is None:
            enhance_below = DEFAULT_ENHANCE_BELOW.get(recognizer.model.name)
        self.enhance_below = enhance_below or None

    def cut(self, gray: np.ndarray, page: int = 0) -> list[Cut]:
        """Detect the lines (and lone-glyph candidates) of one grey page and cut them out for the recogniser."""
        lines = self.detector.detect(gray)
        glyphs = self.detector.stray_glyphs(gray, lines)
        height = self.recognizer.prepare_height
        return (cut_lines(gray, lines, height, page, self.margin)
                + cut_lines(gray, glyphs, height, page, self.margin, glyph=True))

    def unsure(self, results: Sequence[Result]) -> list[int]:
        """Indices of the readings worth a second look with darkened ink."""
        if not self.enhance_below:
            return []
        return [i for i, r in enumerate(results) if r.confidence < self.enhance_below]

    def darkened(self, cut: Cut) -> PreparedImage:
        """The cut with its ink darkened, prepared for the recogniser."""
        return prepare(darken_ink(cut.crop), self.recognizer.prepare_height)

    def finish(self, cuts: Sequence[Cut], results: Sequence[Result], second: Mapping[int, Result], pages: int,
               tidy: bool = True, min_confidence: float | None = None) -> list[list[Line]]:
        """Lines per page from the cuts' readings (``second``: index -> reading of the darkened cut)."""
        recovery = self.detector.config.glyphs
        kept: list[list[tuple[Cut, Result]]] = [[] for _ in range(pages)]
        for i, (cut, result) in enumerate(zip(cuts, results)):
            other = second.get(i)
            if other is not None and other.confidence > result.confidence:
                result = other
            if tidy:
                result = tidy_spacing(result)
            if cut.glyph and not (recovery and recovery.keeps(result.text, result.confidence)):
                continue
            kept[cut.page].append((cut, reject_below(result, min_confidence)))
        out = []
        for page in kept:
            order = reading_order([cut.box for cut, _ in page])
            out.append([to_line(*page[i]) for i in order])
        return out

    def read_cuts(self, cuts: Sequence[Cut], pages: int, allowlist: str | None = None,
                  constraint: Constraint | None = None, min_confidence: float | None = None) -> list[list[Line]]:
        """Read cuts of ``pages`` pages in shared batches (plain, then darkened where unsure); lines per page."""
        results = self.recognizer.recognize_prepared([c.image for c in cuts], allowlist, constraint)
        unsure = self.unsure(results)
        again = self.recognizer.recognize_prepared([self.darkened(cuts[i]) for i in unsure], allowlist, constraint)
        return self.finish(cuts, results, dict(zip(unsure, again)), pages, constraint is None, min_confidence)

    def read(self, grays: Sequence[np.ndarray], allowlist: str | None = None, constraint: Constraint | None = None,
             min_confidence: float | None = None) -> list[list[Line]]:
        """The lines of each grey page, in reading order; a page without text gives an empty list."""
        cuts = [cut for page, gray in enumerate(grays) for cut in self.cut(gray, page)]
        return self.read_cuts(cuts, len(grays), allowlist, constraint, min_confidence)
