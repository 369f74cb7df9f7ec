"""``ocr label``'s first pass: read every image of a folder (or find and cut out the lines of every page) and
save the model's readings as draft labels, resuming where an earlier run stopped."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crnn import InvalidImageError, Recognizer
from crnn.constrained import Constraint
from crnn.decode import Result
from crnn.preprocess import to_gray
from crnn.weights import write_atomically
from ocr.adapt.data import encode_png
from ocr.data.inputs import IMAGE_SUFFIXES
from ocr.label.store import LabelRow, LabelStore
from textdet import PageReader
from textdet.crop import crop_line

#: Images read per call of the recogniser (and per save: an interrupted run loses at most one chunk's readings).
CHUNK = 64
#: Pages per save with ``--detect``.
PAGE_CHUNK = 4
#: Where ``--detect`` saves the lines it cuts out, inside the label folder.
LINES_DIR = "lines"
#: Files larger than this are listed as unreadable without being read.
MAX_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class DraftReport:
    """What one ``ocr label`` pass did."""

    read: int
    skipped_reviewed: int
    unreadable: list[tuple[str, str]]
    interrupted: bool = False


def folder_images(folder: Path, detect: bool) -> list[str]:
    """The images to label in ``folder`` (relative ``/`` paths, sorted), leaving out hidden files and, with
    ``detect``, the lines cut out earlier."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.suffix.lower() not in IMAGE_SUFFIXES or any(part.startswith(".") for part in rel.parts):
            continue
        if detect and rel.parts[0] == LINES_DIR:
            continue
        if path.is_file():
            found.append(rel.as_posix())
    return found


def check_mode(store: LabelStore, detect: bool) -> None:
    """Refuse to mix crops and pages in one folder: its first run decides which it holds."""
    _, meta = store.load()
    mode = meta.get("mode", {}).get("detect")
    if mode is not None and bool(mode) != detect:
        was = "pages (--detect)" if mode else "cropped lines (no --detect)"
        raise ValueError(f"{store.folder} was labelled as {was}; run `ocr label` the same way, or use another folder")
    if mode is None:
        store.set_meta("mode", detect=detect)


def _char_spans(result: Result, shift: float = 0.0) -> list[list]:
    return [[c.text, round(c.x_start + shift), round(c.x_end + shift)] for c in result.chars]


def _read_bytes(path: Path) -> bytes:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidImageError(f"file is larger than {MAX_FILE_BYTES >> 20} MiB")
    return path.read_bytes()


def _reason(exc: OSError | InvalidImageError) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


#: Reads one chunk of names into rows and meta records, listing the unreadable ones in the list it is given.
ReadChunk = Callable[[Sequence[str], list[tuple[str, str]]], tuple[list[LabelRow], list[dict]]]


def _draft_in_chunks(store: LabelStore, names: Sequence[str], size: int, unit: str, desc: str, progress: bool,
                     read_chunk: ReadChunk) -> DraftReport:
    """Read ``names`` ``size`` at a time, saving each chunk's rows before reading the next; Ctrl-C stops after the
    last saved chunk."""
    unreadable: list[tuple[str, str]] = []
    done = skipped = 0
    bar = tqdm(total=len(names), unit=unit, disable=not progress, desc=desc, leave=False)
    try:
        for start in range(0, len(names), size):
            chunk = names[start:start + size]
            rows, meta = read_chunk(chunk, unreadable)
            written = store.put_drafts(rows, meta)
            done += written
            skipped += len(rows) - written
            bar.update(len(chunk))
    except KeyboardInterrupt:
        return DraftReport(done, skipped, unreadable, interrupted=True)
    finally:
        bar.close()
    return DraftReport(done, skipped, unreadable)


def draft_crops(store: LabelStore, recognizer: Recognizer, model: str, images: Sequence[str], allow: str | None,
                constraint: Constraint | None, progress: bool = False) -> DraftReport:
    """Read cropped-line images into draft rows, a chunk at a time (each chunk saved before the next is read)."""

    def read_chunk(chunk: Sequence[str], unreadable: list[tuple[str, str]]) -> tuple[list[LabelRow], list[dict]]:
        rows, prepared, names = [], [], []
        for name in chunk:
            try:
                prepared.append(recognizer.prepare(_read_bytes(store.folder / name)))
                names.append(name)
            except (OSError, InvalidImageError) as exc:
                unreadable.append((name, _reason(exc)))
                rows.append(LabelRow(name, "", "unreadable", model=model, error=_reason(exc)))
        for name, result in zip(names, recognizer.recognize_prepared(prepared, allow, constraint)):
            rows.append(LabelRow(name, result.text, "draft", reading=result.text,
                                 confidence=round(result.confidence, 4), chars=_char_spans(result), model=model))
        return rows, []

    return _draft_in_chunks(store, images, CHUNK, "image", "label", progress, read_chunk)


def _line_name(page: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", page.rsplit(".", 1)[0])
    return f"{LINES_DIR}/{stem}-{index:03d}.png"


def draft_pages(store: LabelStore, reader: PageReader, model: str, pages: Sequence[str], allow: str | None,
                constraint: Constraint | None, progress: bool = False) -> DraftReport:
    """Find the lines of each page, save each one straightened as a PNG under ``lines/`` and its reading as a
    draft row with the page and the line's corners. Pages already done are not read again."""

    def read_chunk(chunk: Sequence[str], unreadable: list[tuple[str, str]]) -> tuple[list[LabelRow], list[dict]]:
        rows, meta = [], []
        for page in chunk:
            try:
                gray = to_gray(_read_bytes(store.folder / page))
            except (OSError, InvalidImageError) as exc:
                unreadable.append((page, _reason(exc)))
                rows.append(LabelRow(page, "", "unreadable", model=model, page=page, error=_reason(exc)))
                continue
            lines = reader.read([gray], allow, constraint)[0]
            for index, line in enumerate(lines, start=1):
                crop, left = crop_line(gray, np.array(line.box, dtype=np.float32), reader.margin)
                name = _line_name(page, index)
                write_atomically(store.folder / name, encode_png(crop))
                result = Result(line.text, line.confidence, line.chars)
                rows.append(LabelRow(name, line.text, "draft", reading=line.text,
                                     confidence=round(line.confidence, 4), chars=_char_spans(result, left),
                                     model=model, page=page, box=[list(p) for p in line.box]))
            meta.append({"meta": f"page:{page}", "lines": len(lines)})
        return rows, meta

    return _draft_in_chunks(store, pages, PAGE_CHUNK, "page", "label --detect", progress, read_chunk)


def pending(store: LabelStore, images: Sequence[str], detect: bool, again: bool) -> list[str]:
    """The images (pages with ``detect``) still to read: not in the state yet; with ``again`` (crops only), drafts
    and unreadable ones too (never what a person reviewed)."""
    rows, meta = store.load()
    if detect:
        done = {key.removeprefix("page:") for key in meta if key.startswith("page:")}
        done |= {row.page for row in rows.values() if row.status == "unreadable" and row.page}
        return [page for page in images if page not in done]
    if again:
        return [name for name in images if name not in rows or rows[name].status in ("draft", "unreadable")]
    return [name for name in images if name not in rows]


def run_drafts(folder: Path, read: Callable[[Sequence[str]], DraftReport], detect: bool, again: bool
               ) -> tuple[DraftReport, int]:
    """Check the folder, then read what is pending; returns the report and how many images were pending."""
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    store = LabelStore(folder)
    images = folder_images(folder, detect)
    if not images and not store.exists():
        raise FileNotFoundError(f"no images found in {folder}")
    check_mode(store, detect)
    todo = pending(store, images, detect, again)
    report = read(todo)
    return report, len(todo)

