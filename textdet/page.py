"""Reading whole pages: detect lines, cut them out straightened, read them all in shared batches.

The work is split into steps so that a caller that owns its own batching
(the server's dynamic batcher) can run the recogniser itself:

1. :meth:`PageReader.cut` — detect one page's lines (and lone-glyph candidates) and cut them out;
2. read every cut's image; then its :meth:`PageReader.second_looks` (darkened copies of unsure lines, turned
   copies of the lines of a page that may be upside down);
3. :meth:`PageReader.finish` — keep the best reading of each, tidy spacing, drop
   unreadable glyph candidates, apply the minimum confidence, sort into reading order.

:meth:`PageReader.read` does all three with the ``Recognizer``'s own batches (:meth:`PageReader.read_cuts`
does steps 2 and 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from crnn.constrained import Constraint
from crnn.decode import CharResult, Result, reject_below
from crnn.preprocess import PreparedImage, prepare
from crnn.recognizer import Recognizer
from textdet.boxes import reading_order
from textdet.crop import DEFAULT_MARGIN, box_size, crop_line
from textdet.detector import Detector
from textdet.lines import darken_ink, tidy_spacing

#: A page on which at least DEFAULT_FLIP_SHARE of the lines read below DEFAULT_FLIP_BELOW confidence is read again
#: turned by 180 degrees, line by line (docs/pages.md: cost and gain on upright and turned receipts).
DEFAULT_FLIP_BELOW = 0.5
DEFAULT_FLIP_SHARE = 0.5
#: Per recogniser: lines read with confidence below this are read again with darkened ink, and the more
#: confident reading is kept. Chosen for english_g2 with CRAFT (docs/studies/detection.md); on the shared receipts
#: it lowers PP-OCRv6 small's word F1 (0.893 -> 0.887 on the first half) and costs it 0.34 s a page (docs/pages.md).
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
    #: Turned by 180 degrees from the detected box (:func:`flip_cut`).
    turned: bool = False


def line_image(crop: np.ndarray, height: int, floor: int | None = None) -> PreparedImage:
    """A cut line prepared for a recogniser of input ``height``, to be padded to at least ``floor`` columns (None:
    the recogniser's own floor; see ``Recognizer.page_min_width``)."""
    return replace(prepare(crop, height), min_width=floor)


def cut_lines(gray: np.ndarray, boxes: Sequence[np.ndarray], height: int, page: int = 0,
              margin: float = DEFAULT_MARGIN, glyph: bool = False, floor: int | None = None) -> list[Cut]:
    """Every box of one page cut out, straightened and prepared (:func:`line_image`)."""
    cuts = []
    for box in boxes:
        crop, left = crop_line(gray, box, margin)
        cuts.append(Cut(page, box, crop, line_image(crop, height, floor), left, glyph))
    return cuts


def flip_cut(cut: Cut, height: int) -> Cut:
    """The cut turned by 180 degrees, for reading a line that may be upside down: its box starts at the other end
    (so the line reads along it) and its left margin is the old right one. It keeps the cut's padding floor."""
    crop = np.ascontiguousarray(cv2.rotate(cut.crop, cv2.ROTATE_180))
    margin = max(0.0, crop.shape[1] - cut.left_margin - box_size(cut.box)[0])
    image = line_image(crop, height, cut.image.min_width)
    return replace(cut, box=np.roll(cut.box, 2, axis=0), crop=crop, image=image, left_margin=margin,
                   turned=not cut.turned)


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
    stops and commas (:func:`tidy_spacing`). Lines read with confidence below
    ``flip_below`` count as unsure: on a page where at least ``flip_share`` of
    the lines are unsure (0: never), every line is read again turned by 180
    degrees, and each is kept the way it reads more confidently (only for
    unconstrained reading: no allowlist, pattern or lexicon).
    """

    def __init__(self, recognizer: Recognizer, detector: Detector, margin: float = DEFAULT_MARGIN,
                 enhance_below: float | None = None, flip_below: float = DEFAULT_FLIP_BELOW,
                 flip_share: float = DEFAULT_FLIP_SHARE) -> None:
        self.recognizer = recognizer
        self.detector = detector
        self.margin = margin
        if enhance_below is None:
            enhance_below = DEFAULT_ENHANCE_BELOW.get(recognizer.model.name)
        self.enhance_below = enhance_below or None
        self.flip_below = flip_below if flip_share else 0.0
        self.flip_share = flip_share

    def cut(self, gray: np.ndarray, page: int = 0) -> list[Cut]:
        """Detect the lines (and lone-glyph candidates) of one grey page and cut them out for the recogniser."""
        lines = self.detector.detect(gray)
        glyphs = self.detector.stray_glyphs(gray, lines)
        height, floor = self.recognizer.prepare_height, self.recognizer.page_min_width
        return (cut_lines(gray, lines, height, page, self.margin, floor=floor)
                + cut_lines(gray, glyphs, height, page, self.margin, glyph=True, floor=floor))

    def unsure(self, results: Sequence[Result]) -> list[int]:
        """Indices of the readings worth a second look with darkened ink."""
        if not self.enhance_below:
            return []
        return [i for i, r in enumerate(results) if r.confidence < self.enhance_below]

    def maybe_upside_down(self, cuts: Sequence[Cut], results: Sequence[Result], constrained: bool = False
                          ) -> list[int]:
        """Indices of the cuts worth reading again turned by 180 degrees: every cut of a page on which at least
        ``flip_share`` of the lines read below ``flip_below`` confidence (an upside-down page reads like that).

        Only unconstrained readings say which way up a page is: under an allowlist, pattern or lexicon an
        upright line's confidence drops too, and a turned one can fit the constraint better (``constrained``:
        none)."""
        if not self.flip_below or constrained:
            return []
        pages: dict[int, list[int]] = {}
        for i, cut in enumerate(cuts):
            pages.setdefault(cut.page, []).append(i)
        turn = []
        for members in pages.values():
            unsure = sum(results[i].confidence < self.flip_below for i in members)
            if unsure >= self.flip_share * len(members):
                turn += members
        return turn

    def flipped(self, cut: Cut) -> Cut:
        """The cut turned by 180 degrees (:func:`flip_cut`)."""
        return flip_cut(cut, self.recognizer.prepare_height)

    def darkened(self, cut: Cut) -> PreparedImage:
        """The cut with its ink darkened, prepared for the recogniser."""
        return line_image(darken_ink(cut.crop), self.recognizer.prepare_height, cut.image.min_width)

    def second_looks(self, cuts: Sequence[Cut], results: Sequence[Result], constrained: bool = False
                     ) -> list[tuple[int, Cut]]:
        """(index, other view) of every cut worth reading again: the darkened copy of each unsure line, then the
        turned copy of every line of a page that may be upside down (``maybe_upside_down``)."""
        looks = [(i, replace(cuts[i], image=self.darkened(cuts[i]))) for i in self.unsure(results)]
        return looks + [(i, self.flipped(cuts[i])) for i in self.maybe_upside_down(cuts, results, constrained)]

    def finish(self, cuts: Sequence[Cut], results: Sequence[Result], looks: Sequence[tuple[int, Cut]],
               again: Sequence[Result], pages: int, tidy: bool = True, min_confidence: float | None = None
               ) -> list[list[Line]]:
        """Lines per page from the cuts' readings and those of their ``second_looks`` (``again``, in order): the
        most confident reading of each cut is kept, with the view it was read in."""
        recovery = self.detector.config.glyphs
        best = list(zip(cuts, results))
        for (i, view), reading in zip(looks, again):
            if reading.confidence > best[i][1].confidence:
                best[i] = (view, reading)
        kept: list[list[tuple[Cut, Result]]] = [[] for _ in range(pages)]
        for cut, result in best:
            if tidy:
                result = tidy_spacing(result)
            if cut.glyph and not (recovery and recovery.keeps(result.text, result.confidence)):
                continue
            kept[cut.page].append((cut, reject_below(result, min_confidence)))
        out = []
        for page in kept:
            order = reading_order([cut.box for cut, _ in page])
            if 2 * sum(cut.turned for cut, _ in page) > len(page):  # an upside-down page reads from the bottom right
                order.reverse()
            out.append([to_line(*page[i]) for i in order])
        return out

    def read_cuts(self, cuts: Sequence[Cut], pages: int, allowlist: str | None = None,
                  constraint: Constraint | None = None, min_confidence: float | None = None) -> list[list[Line]]:
        """Read cuts of ``pages`` pages in shared batches (plain, then their ``second_looks``); lines per page."""
        read = self.recognizer.recognize_prepared
        results = read([c.image for c in cuts], allowlist, constraint)
        looks = self.second_looks(cuts, results, allowlist is not None or constraint is not None)
        again = read([view.image for _, view in looks], allowlist, constraint)
        return self.finish(cuts, results, looks, again, pages, constraint is None, min_confidence)

    def read(self, grays: Sequence[np.ndarray], allowlist: str | None = None, constraint: Constraint | None = None,
             min_confidence: float | None = None) -> list[list[Line]]:
        """The lines of each grey page, in reading order; a page without text gives an empty list."""
        cuts = [cut for page, gray in enumerate(grays) for cut in self.cut(gray, page)]
        return self.read_cuts(cuts, len(grays), allowlist, constraint, min_confidence)
