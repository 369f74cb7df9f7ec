"""A folder's review state: one row per image (the model's draft reading, the label, its status), kept in
``ocr-labels.jsonl`` inside the folder.

The file is a journal: every change appends one JSON line holding the image's whole row, and the last line of an
image wins. Appends are made under an exclusive ``flock`` (so two review pages, ``ocr label`` and a collecting
server can share one folder) and flushed to disk before they are acknowledged, so a change that was answered is
never lost; a torn last line (power cut mid-write) is skipped when read, with a warning. :meth:`LabelStore.compact`
rewrites the journal with one line per image, atomically (temporary file + rename).

Statuses: ``draft`` (read by the model, not reviewed), ``confirmed`` (the reading was right), ``corrected`` (a
person typed the label), ``skipped`` (left out: unreadable to a person too, or not text), ``unreadable`` (the image
could not be decoded). ``ocr adapt`` trains on confirmed and corrected rows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from crnn.weights import write_atomically

#: The review state inside a label folder.
STATE_FILE = "ocr-labels.jsonl"
LOCK_FILE = ".ocr-labels.lock"
GT_FILE = "gt.tsv"
STATUSES = ("draft", "confirmed", "corrected", "skipped", "unreadable")
#: Statuses whose label a person has checked: what ``ocr adapt`` trains on.
LABELLED = frozenset({"confirmed", "corrected"})
#: Statuses a person may set on the review page (``unreadable`` is only ever set by ``ocr label``).
SETTABLE = frozenset({"draft", "confirmed", "corrected", "skipped"})
#: The review page offers the ``ocr adapt`` command once this many labels are confirmed or corrected.
ADAPT_SUGGEST_AFTER = 40


class LabelStateError(ValueError):
    """The review state cannot be read or changed as asked; the message says why."""


@dataclass(frozen=True)
class LabelRow:
    """One image of a label folder.

    ``image`` is its path relative to the folder (``/``-separated); ``text`` is its label (the model's reading
    until a person corrects it); ``reading`` and ``confidence`` are the model's; ``chars`` holds each read
    character with its span ``[char, x_start, x_end]`` in the image's pixels. ``page`` and ``box`` say where a
    line found by ``ocr label --detect`` came from (the page's path, its four corners in page pixels).
    """

    image: str
    text: str
    status: str
    reading: str = ""
    confidence: float | None = None
    chars: list[list[Any]] = field(default_factory=list)
    model: str = ""
    page: str | None = None
    box: list[list[int]] | None = None
    source: str = "ocr label"
    error: str | None = None
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != [] and v != ""} | {
            "text": self.text, "status": self.status}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> LabelRow:
        known = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        if not isinstance(known.get("image"), str) or not isinstance(known.get("text", ""), str):
            raise ValueError("a row needs a string image and text")
        if known.get("status") not in STATUSES:
            raise ValueError(f"unknown status {known.get('status')!r}")
        return cls(**known)

    @property
    def unsure(self) -> float:
        """The chance the draft reading is wrong (1 - calibrated confidence; 1 when it has none)."""
        return 1.0 - (self.confidence if self.confidence is not None else 0.0)


@dataclass(frozen=True)
class Summary:
    """Where a review stands."""

    total: int
    draft: int
    confirmed: int
    corrected: int
    skipped: int
    unreadable: int
    #: Expected wrong readings among the drafts: the sum of 1 - confidence (calibrated confidences).
    expected_errors_left: float

    @property
    def labelled(self) -> int:
        return self.confirmed + self.corrected

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.corrected + self.skipped

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"labelled": self.labelled, "reviewed": self.reviewed,
                               "expected_errors_left": round(self.expected_errors_left, 2)}


def review_order(rows: Iterable[LabelRow]) -> list[LabelRow]:
    """Rows as a person should review them: drafts least sure first, then skipped, then reviewed rows (least sure
    first within each); unreadable images are left out."""
    rank = {"draft": 0, "skipped": 1, "corrected": 2, "confirmed": 2}
    kept = [row for row in rows if row.status in rank]
    return sorted(kept, key=lambda row: (rank[row.status], -row.unsure, row.image))


def summarize(rows: Iterable[LabelRow]) -> Summary:
    """Counts per status and the expected errors left among the drafts."""
    rows = list(rows)
    count = {status: sum(row.status == status for row in rows) for status in STATUSES}
    expected = sum(row.unsure for row in rows if row.status == "draft")
    return Summary(len(rows), count["draft"], count["confirmed"], count["corrected"], count["skipped"],
                   count["unreadable"], expected)


class LabelStore:
    """The review state of one folder (see the module docstring). Every method re-reads the journal, so several
    processes may share a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE
        #: Lines of the journal that could not be read at the last load (skipped).
        self.bad_lines = 0

    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's exclusive lock (a ``flock`` on a side file that is never replaced)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _records(self) -> Iterator[dict[str, Any]]:
        self.bad_lines = 0
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                self.bad_lines += 1
                continue
            if isinstance(record, dict):
                yield record
            else:
                self.bad_lines += 1

    def load(self) -> tuple[dict[str, LabelRow], dict[str, dict[str, Any]]]:
        """Rows by image and meta records by key (the last line of each wins)."""
        rows: dict[str, LabelRow] = {}
        meta: dict[str, dict[str, Any]] = {}
        for record in self._records():
            if "meta" in record:
                meta[str(record["meta"])] = record
                continue
            try:
                row = LabelRow.from_json(record)
            except (TypeError, ValueError):
                self.bad_lines += 1
                continue
            rows[row.image] = row
        return rows, meta

    def rows(self) -> dict[str, LabelRow]:
        return self.load()[0]

    def _append(self, records: list[dict[str, Any]]) -> None:
        """Append records as JSON lines and flush them to disk (the caller holds the lock)."""
        if not records:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        with open(self.path, "a+b") as handle:  # writes go to the end whatever was read
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a torn last line: keep it apart from what follows
                    data = b"\n" + data
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def put_drafts(self, rows: Iterable[LabelRow], meta: Iterable[dict[str, Any]] = (), only_new: bool = False
                   ) -> int:
        """Add draft (or unreadable) rows; a row a person has already reviewed is never replaced (with ``only_new``,
        no row already in the state is). Returns how many rows were written."""
        replaceable = () if only_new else ("draft", "unreadable")
        with self.locked():
            current = self.rows()
            fresh = [replace(row, time=row.time or time.time()) for row in rows
                     if row.image not in current or current[row.image].status in replaceable]
            self._append([row.to_json() for row in fresh] + list(meta))
        return len(fresh)

    def set_label(self, image: str, status: str, text: str | None = None) -> LabelRow:
        """A person's decision on one image: ``confirmed``/``corrected`` with the label (which of the two follows
        from whether it equals the model's reading), ``skipped``, or ``draft`` (undone). Saved before it returns."""
        if status not in SETTABLE:
            raise LabelStateError(f"status must be one of {', '.join(sorted(SETTABLE))}, got {status!r}")
        with self.locked():
            current = self.rows().get(image)
            if current is None or current.status == "unreadable":
                raise LabelStateError(f"no readable image {image!r} in {self.folder}")
            label = current.text if text is None else text
            if status in LABELLED:
                status = "confirmed" if label == current.reading else "corrected"
            elif status == "draft":
                label = current.reading
            row = replace(current, text=label, status=status, time=time.time())
            self._append([row.to_json()])
        return row

    def set_meta(self, key: str, **values: Any) -> None:
        with self.locked():
            self._append([{"meta": key, **values}])

    def compact(self) -> None:
        """Rewrite the journal with one line per image and per meta key (atomically)."""
        with self.locked():
            rows, meta = self.load()
            records = list(meta.values()) + [row.to_json() for row in rows.values()]
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
            if self.path.exists() or records:
                write_atomically(self.path, data)

    def write_gt(self, force: bool = False, drafts: bool = False) -> tuple[Path, int]:
        """Write ``gt.tsv`` from the confirmed and corrected labels (and drafts with ``drafts``). A ``gt.tsv`` this
        store did not write (its digest differs from the one recorded) is replaced only with ``force``."""
        target = self.folder / GT_FILE
        with self.locked():
            rows, meta = self.load()
            if target.exists() and not force and not gt_written_here(target, meta):
                raise LabelStateError(f"{target} exists and was not written by `ocr label` (or was edited since): "
                                      "not replacing it; move it away or pass --force")
            keep = LABELLED | ({"draft"} if drafts else set())
            chosen = [row for row in rows.values() if row.status in keep]
            if not chosen:
                raise LabelStateError(f"{self.folder}: no confirmed or corrected labels to write yet")
            for row in chosen:
                if "\t" in row.text or "\n" in row.text:
                    raise LabelStateError(f"{row.image}: its label holds a tab or a line break; gt.tsv cannot")
            data = "".join(f"{row.image}\t{row.text}\n" for row in sorted(chosen, key=lambda r: r.image)).encode()
            write_atomically(target, data)
            self._append([{"meta": "gt", "sha256": hashlib.sha256(data).hexdigest()}])
        return target, len(chosen)


def gt_written_here(path: Path, meta: dict[str, dict[str, Any]]) -> bool:
    """True if ``path`` (a folder's gt.tsv) is exactly the file the folder's review state last wrote."""
    recorded = meta.get("gt", {}).get("sha256")
    return recorded is not None and recorded == hashlib.sha256(path.read_bytes()).hexdigest()
