"""``ocr batch``: recognise a folder, a list file or a labelled set of any size, on Ray Data or in-process.

Both engines run the same callable class, :class:`BatchRecognizer`, on
batches of image locations: Ray Data as ``map_batches`` actors (one model
each, spread over a cluster), the local engine in this process. Results
stream to the output as batches finish, and a rerun skips ids already
written, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crnn import InvalidImageError, Recognizer
from crnn.preprocess import PreparedImage, to_gray
from ocr.config import BatchConfig, DecodeOptions, DetectOptions, ModelOptions
from ocr.data.datasets import DatasetError, Location, is_labelled, load_image, open_dataset
from ocr.data.inputs import IMAGE_SUFFIXES, expand_inputs
from ocr.output.batch import open_results
from ocr.output.pages import line_record
from textdet import PageReader
from textdet.page import page_confidence, page_text

#: Columns of the items handed to :class:`BatchRecognizer` (Arrow-friendly scalars only).
ITEM_COLUMNS = ("id", "label", "source", "path", "index")


def list_items(source: Path) -> list[dict]:
    """Every image of ``source`` as a small row; ids are unique.

    ``source`` is a labelled set (any ``ocr eval`` layout: ids are its sample
    names), a folder of images (ids are paths relative to it), or a text file
    listing image paths, one per line (relative to the file's folder; ids are
    the lines as written).
    """
    if not source.exists():
        raise FileNotFoundError(f"input not found: {source}")
    labelled = is_labelled(source)
    if labelled:
        locations = open_dataset(source).locations()
    elif source.is_dir():
        locations = [Location(str(p.relative_to(source)), "", "file", str(p)) for p in expand_inputs((source,))]
        if not locations:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        locations = [Location(source.name, "", "file", str(source))]
    else:
        locations = _list_file(source)
    duplicates = [name for name, count in Counter(loc.name for loc in locations).items() if count > 1]
    if duplicates:
        raise DatasetError(f"{source}: {len(duplicates)} duplicate ids, e.g. {duplicates[:3]}; ids must be unique")
    return [
        {"id": loc.name, "label": loc.label if labelled else None, "source": loc.source, "path": loc.path,
         "index": loc.index}
        for loc in locations
    ]


def _list_file(path: Path) -> list[Location]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 list of image paths ({exc})") from exc
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise DatasetError(f"{path}: no image paths (expected one path per line)")
    return [Location(name, "", "file", str(path.parent / name)) for name in names]


class BatchRecognizer:
    """Reads one batch of item rows into result rows; bad images become rows with an ``error``, not exceptions.

    The Ray engine builds one per actor (``map_batches``); the local engine builds one.
    """

    def __init__(self, model: ModelOptions, allow: str | None, decode: DecodeOptions | None = None,
                 detect: DetectOptions | None = None) -> None:
        self.allow = allow
        self.decode = decode or DecodeOptions()
        self.detect = detect or DetectOptions()
        self.pages: PageReader | None = None
        # Every torch call of this object runs on one thread: once a second thread ran the model, both
        # ran 2.2x slower here (torch's OpenMP pools are per calling thread), and Ray may call __call__
        # from a thread other than the constructor's.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.recognizer = self._thread.submit(self._load, model).result()

    def _load(self, model: ModelOptions) -> Recognizer:
        recognizer = model.load()
        recognizer.charset.allow_mask(self.allow)  # a bad allowlist or constraint fails before any work
        self.constraint = self.decode.build(recognizer)
        recognizer.warmup()
        if self.detect.detect:
            self.pages = self.detect.page_reader(recognizer, model)
        return recognizer

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._thread.submit(self._read, batch).result()

    def _read(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = [str(i) for i in batch["id"]]
        images: list[PreparedImage | np.ndarray] = []
        errors: dict[int, str] = {}
        for k, (source, path, index) in enumerate(zip(batch["source"], batch["path"], batch["index"])):
            try:
                image = load_image(str(source), str(path), int(index))
                images.append(to_gray(image) if self.pages else self.recognizer.prepare(image))
            except InvalidImageError as exc:
                errors[k] = str(exc)
            except OSError as exc:
                errors[k] = f"cannot read: {exc.strerror or exc}"
        columns: dict[str, np.ndarray] = {}
        if self.pages is not None:
            pages = self.pages.read(images, self.allow, self.constraint, self.decode.min_confidence)
            found = iter(pages)
            per_item = [None if k in errors else next(found) for k in range(len(ids))]
            texts = [page_text(lines or []) for lines in per_item]
            confidences = [page_confidence(lines or []) for lines in per_item]
            columns["lines"] = np.array([json.dumps([line_record(line, char_details=False) for line in lines or []])
                                         for lines in per_item], dtype=object)
        else:
            results = iter(self.recognizer.recognize_prepared(images, self.allow, self.constraint,  # type: ignore[arg-type]
                                                              self.decode.min_confidence))
            readings = [None if k in errors else next(results) for k in range(len(ids))]
            texts = [r.text if r else "" for r in readings]
            confidences = [r.confidence if r else 0.0 for r in readings]
        return {
            "id": np.array(ids, dtype=object),
            "text": np.array(texts, dtype=object),
            "confidence": np.array(confidences, dtype=np.float32),
            "error": np.array([errors.get(k, "") for k in range(len(ids))], dtype=object),
            "label": np.array(list(batch["label"]), dtype=object),
            **columns,
        }


def _text_or_none(value) -> str | None:
    """A string column value; Arrow's nulls (None, or NaN after a trip through numpy) become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _rows(columns: dict[str, np.ndarray]) -> list[dict]:
    rows = [
        {
            "id": str(columns["id"][k]),
            "text": str(columns["text"][k]),
            "confidence": round(float(columns["confidence"][k]), 4),
            "error": _text_or_none(columns["error"][k]) or None,  # "" means no error
            "label": _text_or_none(columns["label"][k]),
        }
        for k in range(len(columns["id"]))
    ]
    if "lines" in columns:  # --detect: each page's lines (box, text, confidence) as a list
        for k, row in enumerate(rows):
            row["lines"] = json.loads(str(columns["lines"][k]))
    return rows


def _columns(items: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.array([item[key] for item in items], dtype=object) for key in ITEM_COLUMNS}


def _local(items: list[dict], config: BatchConfig) -> Iterator[list[dict]]:
    reader = BatchRecognizer(config.model, config.allow, config.decode, config.detect)
    rows = iter(items)
    while chunk := list(islice(rows, config.batch_size)):
        yield _rows(reader(_columns(chunk)))


def ray_available() -> bool:
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def _ray(items: list[dict], config: BatchConfig) -> Iterator[list[dict]]:
    import ray
    import ray.data

    if not ray.is_initialized():
        if config.ray_address:
            ray.init(address=config.ray_address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts rows written
    blocks = min(1000, math.ceil(len(items) / config.batch_size))
    dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        BatchRecognizer,
        fn_constructor_kwargs={"model": config.model, "allow": config.allow, "decode": config.decode,
                               "detect": config.detect},
        batch_size=config.batch_size,
        batch_format="numpy",
        concurrency=config.concurrency,
        num_cpus=config.cpus_per_worker,
        num_gpus=config.gpus_per_worker or None,
    )
    for columns in dataset.iter_batches(batch_size=config.batch_size, batch_format="numpy"):
        yield _rows(columns)


@dataclass
class BatchSummary:
    total: int = 0
    skipped: int = 0
    done: int = 0
    failures: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: Seconds until the first rows came back (engine start-up, model load, first batch).
    first_rows_s: float = 0.0
    engine: str = "local"
    interrupted: bool = False

    @property
    def lines_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "total": self.total, "skipped": self.skipped, "done": self.done, "failed": sum(self.failures.values()),
            "failures": dict(self.failures), "seconds": round(self.seconds, 3),
            "first_rows_s": round(self.first_rows_s, 3), "lines_per_s": round(self.lines_per_s, 2),
            "engine": self.engine,
            "interrupted": self.interrupted,
        }


def choose_engine(engine: str) -> str:
    """``auto`` is Ray Data when Ray is installed, else the local engine."""
    if engine == "ray" and not ray_available():
        raise ValueError("--engine ray needs Ray Data: pip install '.[ray]' (or use --engine local)")
    if engine == "auto":
        return "ray" if ray_available() else "local"
    return engine


def run_batch(config: BatchConfig, progress: bool = True) -> BatchSummary:
    """Read every image of ``config.input`` not yet in ``config.out``, streaming rows to it."""
    items = list_items(config.input)
    if config.limit is not None:
        items = items[: config.limit]
    writer = open_results(config.out)
    done = writer.done_ids()
    pending = [item for item in items if item["id"] not in done]
    summary = BatchSummary(total=len(items), skipped=len(items) - len(pending), engine=choose_engine(config.engine))
    start = time.perf_counter()
    try:
        with tqdm(total=len(items), initial=summary.skipped, unit="line", disable=not progress, desc="batch") as bar:
            if pending:
                stream = _ray(pending, config) if summary.engine == "ray" else _local(pending, config)
                for rows in stream:
                    writer.write(rows)
                    if not summary.done:
                        summary.first_rows_s = time.perf_counter() - start
                    summary.done += len(rows)
                    for row in rows:
                        if row["error"]:
                            summary.failures[row["error"]] += 1
                            summary.examples.setdefault(row["error"], row["id"])
                    bar.update(len(rows))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        writer.close()
        summary.seconds = time.perf_counter() - start
    return summary


def print_summary(summary: BatchSummary, out_path: Path, file=None) -> None:
    """The end-of-run report: counts, failures by reason (with an example id) and throughput."""
    file = file or sys.stdout
    failed = sum(summary.failures.values())
    print(f"{out_path}: {summary.done} read now, {summary.skipped} already there, {summary.total} in the input; "
          f"{failed} failed", file=file)
    for reason, count in summary.failures.most_common():
        print(f"  {count} x {reason} (e.g. {summary.examples[reason]})", file=file)
    print(f"{summary.lines_per_s:.1f} lines/s over {summary.seconds:.1f} s with the {summary.engine} engine, "
          f"start-up included (first rows after {summary.first_rows_s:.1f} s)", file=file)
    if summary.interrupted:
        print("interrupted: rerun the same command to resume", file=file)
