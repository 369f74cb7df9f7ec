"""Labelled image sets in the formats users already have, behind one reader.

Accepted layouts of a dataset folder (checked in this order):

* ``ocr-labels.jsonl``: the review state ``ocr label`` writes; its confirmed and corrected labels (drafts too
  when asked). A folder holding it and a hand-written label file is refused: name the file to use.
* ``gt.tsv`` or ``gt.txt``: ``relative/path<TAB>label`` per line
* ``labels.csv``: header ``filename,words``; split on the first comma only
* ``labels.json`` (docTR): ``{"file.jpg": "text", ...}``, images under ``images/`` or beside it
* an LMDB folder (``data.mdb``) in the standard text-recognition layout
* MNIST IDX files: ``*-images-idx3-ubyte(.gz)`` with ``*-labels-idx1-ubyte(.gz)``
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np

from ocr.data.lmdb_io import is_lmdb, lmdb_count, read_labels, read_lmdb, read_lmdb_image
from ocr.data.mnist import digit_to_crop, find_idx_pair, read_idx
from ocr.label.store import GT_FILE, LABELLED, STATE_FILE, LabelStore, gt_written_here

FORMATS_HELP = """accepted dataset layouts:
  ocr-labels.jsonl  the review state of `ocr label` (its confirmed and corrected labels)
  gt.tsv / gt.txt   one 'path<TAB>label' per line, e.g.  images/0001.png\tHELLO
  labels.csv        header 'filename,words', e.g.          0001.png,HELLO, WORLD
  labels.json       docTR style, e.g.                      {"0001.png": "HELLO"}
  LMDB              data.mdb with num-samples, image-%09d, label-%09d (from 1)
  MNIST IDX         *-images-idx3-ubyte(.gz) + *-labels-idx1-ubyte(.gz)"""


class DatasetError(ValueError):
    """A dataset folder or label file cannot be read; the message says where and why."""


@dataclass(frozen=True)
class Sample:
    """One labelled image: ``image`` is encoded file bytes or a grey uint8 array."""

    name: str
    image: bytes | np.ndarray
    label: str


@dataclass(frozen=True)
class Location:
    """Where one labelled image lives, small enough to send to another process; :meth:`load` reads it.

    ``source`` is ``file`` (``path`` is the image), ``lmdb`` (``path`` is the
    LMDB folder, ``index`` counts from 1) or ``idx`` (``path`` is an MNIST
    images file, ``index`` from 0).
    """

    name: str
    label: str
    source: str
    path: str
    index: int = 0

    def load(self) -> bytes | np.ndarray:
        """The image: encoded bytes or a grey array (``OSError`` if a file cannot be read)."""
        return load_image(self.source, self.path, self.index)


def load_image(source: str, path: str, index: int = 0) -> bytes | np.ndarray:
    """Read the image a :class:`Location` points at (readers are cached per process)."""
    if source == "file":
        return Path(path).read_bytes()
    if source == "lmdb":
        return read_lmdb_image(Path(path), index)
    if source == "idx":
        return digit_to_crop(_idx_images(path)[index])
    raise ValueError(f"unknown image source {source!r}")


@lru_cache(maxsize=2)
def _idx_images(path: str) -> np.ndarray:
    return read_idx(Path(path))


@dataclass(frozen=True)
class _Entry:
    name: str
    path: Path
    label: str


class Dataset:
    """A labelled set: ``len()`` and iteration over :class:`Sample` (images read lazily)."""

    def __init__(
        self, root: Path, kind: str, size: int, reader, locator: Callable[[], list[Location]] | None = None
    ) -> None:
        self.root = root
        self.kind = kind
        self._size = size
        self._reader = reader
        self._locator = locator

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Sample]:
        return self._reader()

    def cached(self, limit: int | None = None) -> Dataset:
        """The first ``limit`` samples (None: all) read now and held in memory: for timing loops that must not
        pay for file reads."""
        samples = list(islice(iter(self), limit))
        return Dataset(self.root, self.kind, len(samples), lambda: iter(samples))

    def locations(self) -> list[Location]:
        """Where each sample's image lives, in order, without reading the images."""
        if self._locator is None:
            raise DatasetError(f"{self.root}: {self.kind} samples have no locations")
        return self._locator()

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, kind={self.kind!r}, n={self._size})"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc


def _parse_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DatasetError(f"{path}:{lineno}: expected 'path<TAB>label', found no tab in {line[:60]!r}")
        name, label = line.split("\t", 1)
        rows.append((name, label))
    return rows


def _parse_csv(path: Path) -> list[tuple[str, str]]:
    lines = _read_text(path).splitlines()
    if not lines:
        raise DatasetError(f"{path}: empty file; expected a header 'filename,words'")
    header = next(csv.reader([lines[0]]))
    if [h.strip() for h in header[:2]] != ["filename", "words"]:
        raise DatasetError(f"{path}:1: expected the header 'filename,words', found {lines[0][:60]!r}")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if "," not in line:
            raise DatasetError(f"{path}:{lineno}: expected 'filename,words', found no comma in {line[:60]!r}")
        name, label = line.split(",", 1)
        if len(label) >= 2 and label[0] == label[-1] == '"':
            label = label[1:-1].replace('""', '"')
        rows.append((name, label))
    return rows


def _parse_json(path: Path) -> list[tuple[str, str]]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DatasetError(f'{path}: expected an object of file name -> text, e.g. {{"0001.png": "HELLO"}}')
    return list(data.items())


def _file_dataset(root: Path, label_file: Path, rows: list[tuple[str, str]], image_dir: Path) -> Dataset:
    entries = [_Entry(name, image_dir / name, label) for name, label in rows]
    if not entries:
        raise DatasetError(f"{label_file}: no samples")

    def reader() -> Iterator[Sample]:
        for entry in entries:
            try:
                data = entry.path.read_bytes()
            except OSError:
                data = b""  # the recogniser reports it as an empty image
            yield Sample(entry.name, data, entry.label)

    def locator() -> list[Location]:
        return [Location(e.name, e.label, "file", str(e.path)) for e in entries]

    return Dataset(root, label_file.name, len(entries), reader, locator)


def _mnist_dataset(root: Path, images_path: Path, labels_path: Path) -> Dataset:
    try:
        digits, labels = read_idx(images_path), read_idx(labels_path)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read MNIST files in {root}: {exc}") from exc
    if digits.ndim != 3 or len(digits) != len(labels):
        raise DatasetError(
            f"{root}: {images_path.name} and {labels_path.name} disagree ({digits.shape} vs {labels.shape})"
        )

    def reader() -> Iterator[Sample]:
        for i, (digit, label) in enumerate(zip(digits, labels)):
            yield Sample(str(i), digit_to_crop(digit), str(int(label)))

    def locator() -> list[Location]:
        return [Location(str(i), str(int(label)), "idx", str(images_path), i) for i, label in enumerate(labels)]

    return Dataset(root, "mnist-idx", len(digits), reader, locator)


def _review_dataset(state: Path, drafts: bool) -> Dataset:
    """The labels of an ``ocr label`` folder: confirmed and corrected rows (and drafts with ``drafts``)."""
    store = LabelStore(state.parent)
    keep = LABELLED | ({"draft"} if drafts else set())
    rows = sorted((row for row in store.rows().values() if row.status in keep), key=lambda row: row.image)
    if not rows:
        raise DatasetError(f"{state}: no confirmed or corrected labels yet"
                           + ("" if drafts else " (review them with `ocr label --review`, or pass --include-drafts)"))
    return _file_dataset(state.parent, state, [(row.image, row.text) for row in rows], state.parent)


def hand_label_file(root: Path) -> Path | None:
    """A label file in ``root`` that ``ocr label`` did not write itself (its gt.tsv is recognised by digest)."""
    _, meta = LabelStore(root).load()
    for name in ("gt.tsv", "gt.txt", "labels.csv", "labels.json"):
        path = root / name
        if path.is_file() and not (name == GT_FILE and gt_written_here(path, meta)):
            return path
    return None


def is_labelled(path: Path | str) -> bool:
    """True if ``path`` looks like a labelled set (a label file, or a folder holding one, an LMDB or MNIST IDX)."""
    path = Path(path)
    if path.is_file():
        return path.name in ("gt.tsv", "gt.txt", "data.mdb", STATE_FILE) or path.suffix in (".csv", ".json")
    if not path.is_dir():
        return False
    return (
        any((path / name).is_file() for name in (STATE_FILE, "gt.tsv", "gt.txt", "labels.csv", "labels.json"))
        or is_lmdb(path)
        or find_idx_pair(path) is not None
    )


def open_dataset(path: Path | str, drafts: bool = False) -> Dataset:
    """Open a labelled dataset in any accepted layout; raises ``DatasetError`` listing them if none fits.

    ``drafts``: in an ``ocr label`` folder, also take the model's unreviewed draft readings as labels.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"dataset not found: {root}")
    if root.is_file() and root.name == STATE_FILE:
        return _review_dataset(root, drafts)
    if root.is_dir() and (root / STATE_FILE).is_file():
        hand = hand_label_file(root)
        if hand is not None:
            raise DatasetError(f"{root} holds both {hand.name} and the review state {STATE_FILE} of `ocr label`: "
                               f"name the labels to use, {hand} or {root / STATE_FILE}")
        return _review_dataset(root / STATE_FILE, drafts)
    if root.is_file():
        if root.name in ("gt.tsv", "gt.txt"):
            return _file_dataset(root.parent, root, _parse_tsv(root), root.parent)
        if root.suffix == ".csv":
            return _file_dataset(root.parent, root, _parse_csv(root), root.parent)
        if root.suffix == ".json":
            return _file_dataset(root.parent, root, _parse_json(root), root.parent)
        if root.name != "data.mdb":
            raise DatasetError(f"{root}: not a dataset folder or label file\n{FORMATS_HELP}")
    for name in ("gt.tsv", "gt.txt"):
        if (root / name).is_file():
            return _file_dataset(root, root / name, _parse_tsv(root / name), root)
    if (root / "labels.csv").is_file():
        return _file_dataset(root, root / "labels.csv", _parse_csv(root / "labels.csv"), root)
    if (root / "labels.json").is_file():
        image_dir = root / "images" if (root / "images").is_dir() else root
        return _file_dataset(root, root / "labels.json", _parse_json(root / "labels.json"), image_dir)
    if is_lmdb(root):
        try:
            count = lmdb_count(root)
        except Exception as exc:
            raise DatasetError(f"{root}: cannot read LMDB: {exc}") from exc

        def reader() -> Iterator[Sample]:
            for key, image, label in read_lmdb(root):
                yield Sample(key, image, label)

        def locator() -> list[Location]:
            return [Location(key, label, "lmdb", str(root), i) for i, (key, label) in enumerate(read_labels(root), 1)]

        return Dataset(root, "lmdb", count, reader, locator)
    pair = find_idx_pair(root)
    if pair is not None:
        return _mnist_dataset(root, *pair)
    raise DatasetError(f"no labels found in {root}\n{FORMATS_HELP}")
