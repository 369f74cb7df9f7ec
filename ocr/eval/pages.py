"""``ocr eval --detect``: find and read the lines of annotated pages, score detection and words."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from crnn import InvalidImageError
from crnn.preprocess import to_gray
from ocr.data.page_sets import Page
from ocr.eval.page_metrics import IOU_THRESHOLD, Tally
from textdet import Line, PageReader


@dataclass(frozen=True)
class PageEvaluation:
    """Scores over a page set, the lines read on each page, and the time spent."""

    scores: dict[str, float]
    lines: dict[str, list[Line]]
    errors: dict[str, str]
    seconds: float
    pages: int

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.pages if self.pages else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """The ``--json`` record."""
        return {"pages": self.pages, "unreadable": len(self.errors),
                **{k: round(v, 4) for k, v in self.scores.items()},
                "iou_threshold": IOU_THRESHOLD, "seconds_per_image": round(self.seconds_per_image, 3)}


def evaluate_pages(reader: PageReader, pages: list[Page], limit: int | None = None, progress: bool = True
                   ) -> PageEvaluation:
    """Read every page (an unreadable image counts as a page with no lines) and score it.

    The clock covers decoding, detection and recognition of each page.
    """
    reader.recognizer.warmup()
    pages = pages[:limit] if limit is not None else pages
    tally = Tally()
    lines: dict[str, list[Line]] = {}
    errors: dict[str, str] = {}
    seconds = 0.0
    for page in tqdm(pages, unit="page", disable=not progress, desc="eval", leave=False):
        start = time.perf_counter()
        try:
            found = reader.read([to_gray(page.image_path.read_bytes())])[0]
        except (OSError, InvalidImageError) as exc:
            errors[page.name] = str(exc)
            found = []
        seconds += time.perf_counter() - start
        lines[page.name] = found
        tally.add_page([np.array(line.box, np.float32) for line in found], [line.text for line in found],
                       [t.box for t in page.lines], [t.text for t in page.lines], [t.dont_care for t in page.lines])
    return PageEvaluation(tally.summary(), lines, errors, seconds, len(pages))
