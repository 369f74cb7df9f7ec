"""Reading and writing the standard text-recognition LMDB layout.

Keys: ``num-samples`` (ASCII count), ``image-%09d`` (encoded image bytes),
``label-%09d`` (UTF-8 text), indices from 1. Used by the CRNN and
scene-text-benchmark code bases and PaddleOCR.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import lmdb


def is_lmdb(path: Path) -> bool:
    """True if ``path`` is an LMDB environment folder (or its ``data.mdb``)."""
    path = Path(path)
    return (path / "data.mdb").is_file() or (path.name == "data.mdb" and path.is_file())


def _open(path: Path) -> lmdb.Environment:
    path = Path(path)
    if path.name == "data.mdb":
        path = path.parent
    return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=64)


def lmdb_count(path: Path) -> int:
    """The ``num-samples`` of an LMDB dataset."""
    env = _open(path)
    try:
        with env.begin() as txn:
            raw = txn.get(b"num-samples")
    finally:
        env.close()
    if raw is None:
        raise ValueError(f"{path}: LMDB has no 'num-samples' key (not the standard text-recognition layout)")
    try:
        return int(raw.decode("ascii").strip())
    except ValueError as exc:
        raise ValueError(f"{path}: 'num-samples' is not a number: {raw[:20]!r}") from exc


def read_lmdb(path: Path) -> Iterator[tuple[str, bytes, str]]:
    """Yield ``(key, image_bytes, label)`` in index order."""
    count = lmdb_count(path)
    env = _open(path)
    try:
        with env.begin() as txn:
            for index in range(1, count + 1):
                image_key = b"image-%09d" % index
                image = txn.get(image_key)
                label = txn.get(b"label-%09d" % index)
                if image is None or label is None:
                    raise ValueError(f"{path}: sample {index} of {count} is missing its image or label")
                yield image_key.decode(), bytes(image), label.decode("utf-8")
    finally:
        env.close()


def read_labels(path: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(image_key, label)`` in index order without reading the images."""
    count = lmdb_count(path)
    env = _open(path)
    try:
        with env.begin() as txn:
            for index in range(1, count + 1):
                label = txn.get(b"label-%09d" % index)
                if label is None:
                    raise ValueError(f"{path}: sample {index} of {count} has no label")
                yield f"image-{index:09d}", label.decode("utf-8")
    finally:
        env.close()


@lru_cache(maxsize=8)
def _reader(path: Path) -> lmdb.Environment:
    return _open(path)


def read_lmdb_image(path: Path, index: int) -> bytes:
    """The image bytes of sample ``index`` (from 1); the environment stays open for the next call."""
    with _reader(Path(path)).begin() as txn:
        image = txn.get(b"image-%09d" % index)
    if image is None:
        raise OSError(f"{path}: no image-{index:09d}")
    return bytes(image)


def write_lmdb(path: Path, samples: Iterable[tuple[bytes, str]], map_size: int = 1 << 34) -> int:
    """Write ``(image_bytes, label)`` pairs in the standard layout; returns the count.

    Everything is committed in one transaction, so a crash leaves no
    half-written ``num-samples``.
    """
    Path(path).mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=map_size)
    count = 0
    try:
        with env.begin(write=True) as txn:
            for count, (image, label) in enumerate(samples, start=1):
                txn.put(b"image-%09d" % count, image)
                txn.put(b"label-%09d" % count, label.encode("utf-8"))
            txn.put(b"num-samples", str(count).encode("ascii"))
    finally:
        env.close()
    return count
