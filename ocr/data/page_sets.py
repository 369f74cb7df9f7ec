"""Whole-page sets with line boxes, for ``ocr eval --detect``.

Layout: a folder with ``images/`` and ``boxes/``; each ``images/<stem>.<ext>``
has one box file in ``boxes/``, in any of these formats:

* ``<stem>.csv`` or ``<stem>.txt`` (SROIE, ICDAR 2015): ``x1,y1,x2,y2,x3,y3,x4,y4,transcript``
  per line (corners clockwise from top-left; the transcript may contain commas);
* ``gt_<stem>.txt`` (ICDAR naming), same format; four numbers ``left,top,right,bottom,transcript``
  (ICDAR 2013) are accepted too, and a transcript in double quotes is unquoted;
* ``<stem>.json``: ``[{"box": [[x, y], [x, y], [x, y], [x, y]], "text": "..."}, ...]``
  (or ``{"lines": [...]}``).

A transcript of ``###`` marks an unreadable region: it is left out of the word
counts, and detections over it count neither for nor against the detector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocr.data.datasets import DatasetError
from ocr.data.inputs import IMAGE_SUFFIXES

PAGE_FORMATS_HELP = """page sets for --detect: a folder with images/ and boxes/, one box file per image:
  boxes/<stem>.csv or .txt   x1,y1,x2,y2,x3,y3,x4,y4,transcript per line (SROIE, ICDAR 2015)
  boxes/gt_<stem>.txt        the same, ICDAR naming; left,top,right,bottom,"transcript" (ICDAR 2013) too
  boxes/<stem>.json          [{"box": [[x,y],[x,y],[x,y],[x,y]], "text": "..."}, ...]
  a transcript of ### marks an unreadable region (not scored)"""
DONT_CARE = "###"


@dataclass(frozen=True)
class TruthLine:
    """One annotated line: its corners (4, 2) and transcript."""

    box: np.ndarray
    text: str

    @property
    def dont_care(self) -> bool:
        return self.text == DONT_CARE


@dataclass(frozen=True)
class Page:
    """One annotated page: the image file and its lines."""

    name: str
    image_path: Path
    lines: list[TruthLine]


def is_page_set(path: Path | str) -> bool:
    """True when ``path`` looks like a page set (``images/`` beside ``boxes/``)."""
    path = Path(path)
    return (path / "images").is_dir() and (path / "boxes").is_dir()


def _box_from_numbers(numbers: list[float], where: str) -> np.ndarray:
    if len(numbers) == 8:
        return np.array(numbers, np.float32).reshape(4, 2)
    if len(numbers) == 4:
        left, top, right, bottom = numbers
        return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
    raise DatasetError(f"{where}: expected 8 (or 4) coordinates before the transcript")


def _parse_delimited(path: Path) -> list[TruthLine]:
    lines = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, row in enumerate(text.splitlines(), 1):
        if not row.strip():
            continue
        fields = row.split(",")
        where = f"{path}:{number}"
        count = 8 if len(fields) > 8 and _all_numbers(fields[:8]) else 4
        if len(fields) <= count or not _all_numbers(fields[:count]):
            raise DatasetError(f"{where}: expected 'x1,y1,...,x4,y4,transcript', got {row[:80]!r}")
        transcript = ",".join(fields[count:]).strip()
        if len(transcript) >= 2 and transcript[0] == transcript[-1] == '"':
            transcript = transcript[1:-1]
        lines.append(TruthLine(_box_from_numbers([float(f) for f in fields[:count]], where), transcript))
    return lines


def _all_numbers(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _parse_json(path: Path) -> list[TruthLine]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    entries = data.get("lines") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a list of {{'box', 'text'}} objects (or {{'lines': [...]}})")
    lines = []
    for i, entry in enumerate(entries):
        where = f"{path}: line {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or "box" not in entry:
            raise DatasetError(f"{where}: expected an object with 'box' and 'text'")
        try:
            numbers = [float(v) for v in np.asarray(entry["box"], dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: 'box' must be four [x, y] corners") from exc
        lines.append(TruthLine(_box_from_numbers(numbers, where), entry["text"]))
    return lines


def _box_file(boxes: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv", f"{stem}.txt", f"gt_{stem}.txt", f"{stem}.json"):
        if (boxes / name).is_file():
            return boxes / name
    return None


def open_page_set(path: Path | str) -> list[Page]:
    """Every page of a page set, sorted by name; raises ``DatasetError`` saying what is wrong."""
    root = Path(path)
    if not is_page_set(root):
        raise DatasetError(f"{root}: a page set needs 'images/' and 'boxes/' folders (see ocr eval --help)")
    pages = []
    for image in sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        box_file = _box_file(root / "boxes", image.stem)
        if box_file is None:
            raise DatasetError(f"{image}: no box file boxes/{image.stem}.csv, .txt, gt_{image.stem}.txt or .json")
        parse = _parse_json if box_file.suffix == ".json" else _parse_delimited
        pages.append(Page(image.stem, image, parse(box_file)))
    if not pages:
        raise DatasetError(f"{root}/images: no images")
    return pages
