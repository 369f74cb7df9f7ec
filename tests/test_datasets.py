"""Every accepted dataset layout, and clear errors for the wrong ones."""

from __future__ import annotations

import gzip
import json
import struct
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from ocr.data.datasets import DatasetError, open_dataset
from ocr.data.lmdb_io import read_lmdb, write_lmdb
from ocr.data.mnist import digit_to_crop
from ocr.eval.metrics import loose, score
from tests.conftest import EXAMPLES, encode


def make_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(encode(np.full((10, 30), 255, np.uint8)))


def test_gt_tsv_and_gt_txt(tmp_path: Path) -> None:
    make_images(tmp_path, ["images/a.png", "images/b.png"])
    (tmp_path / "gt.tsv").write_text("images/a.png\tHELLO WORLD\n\nimages/b.png\ttab\tinside\n", encoding="utf-8")
    samples = list(open_dataset(tmp_path))
    assert [(s.name, s.label) for s in samples] == [("images/a.png", "HELLO WORLD"), ("images/b.png", "tab\tinside")]
    assert samples[0].image[:4] == b"\x89PNG"
    (tmp_path / "gt.tsv").rename(tmp_path / "gt.txt")
    assert len(open_dataset(tmp_path)) == 2


def test_labels_csv_splits_on_first_comma(tmp_path: Path) -> None:
    make_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "labels.csv").write_text('filename,words\na.png,1,234.50\nb.png,"quoted, text"\n')
    assert [s.label for s in open_dataset(tmp_path)] == ["1,234.50", "quoted, text"]


def test_labels_json_with_images_folder(tmp_path: Path) -> None:
    make_images(tmp_path / "images", ["x.png"])
    (tmp_path / "labels.json").write_text(json.dumps({"x.png": "Caf\u00e9"}))
    (sample,) = list(open_dataset(tmp_path))
    assert sample.label == "Caf\u00e9" and sample.image[:4] == b"\x89PNG"


def test_lmdb_round_trip(tmp_path: Path) -> None:
    data = [(encode(np.full((8, 20), 255, np.uint8)), f"label {i}") for i in range(3)]
    assert write_lmdb(tmp_path / "db", data, map_size=1 << 22) == 3
    samples = list(open_dataset(tmp_path / "db"))
    assert [s.label for s in samples] == ["label 0", "label 1", "label 2"]
    assert samples[0].name == "image-000000001" and samples[2].image == data[2][0]
    assert [k for k, _, _ in read_lmdb(tmp_path / "db")][0] == "image-000000001"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_digits_become_dark_on_light(tmp_path: Path) -> None:
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 10:18, 12:16] = 255
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", digits)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([1, 7, 0]))
    samples = list(open_dataset(tmp_path))
    assert [s.label for s in samples] == ["1", "7", "0"]
    crop = samples[0].image
    assert crop.shape == (36, 36) and crop[0, 0] == 255 and crop[14, 18] == 0
    assert np.array_equal(digit_to_crop(digits[0]), crop)


def test_mnist_mismatched_counts(tmp_path: Path) -> None:
    write_idx(tmp_path / "x-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    write_idx(tmp_path / "x-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(DatasetError, match="disagree"):
        open_dataset(tmp_path)


def test_no_labels_lists_every_format(tmp_path: Path) -> None:
    make_images(tmp_path, ["a.png"])
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path)
    for needle in ("gt.tsv", "labels.csv", "labels.json", "LMDB", "MNIST"):
        assert needle in str(info.value)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("gt.tsv", "images/a.png HELLO\n", r"gt.tsv:1: expected 'path<TAB>label'"),
        ("labels.csv", "file,text\na.png,x\n", r"labels.csv:1: expected the header"),
        ("labels.csv", "filename,words\na.png\n", r"labels.csv:2: .*no comma"),
        ("labels.json", "[1, 2]", "expected an object"),
        ("labels.json", "{oops", "invalid JSON"),
        ("gt.tsv", "", "no samples"),
    ],
)
def test_wrong_label_files_name_the_line(tmp_path: Path, name: str, content: str, match: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=match):
        open_dataset(tmp_path)


def test_non_utf8_and_missing(tmp_path: Path) -> None:
    (tmp_path / "gt.tsv").write_bytes(b"a.png\t\xff\xfe\n")
    with pytest.raises(DatasetError, match="UTF-8"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope")


def test_metrics() -> None:
    assert loose("Hello, World!") == "helloworld"
    s = score(["HELLO", "w0rld", ""], ["hello", "world", "ab"])
    assert s.n == 3 and s.exact == 0.0
    assert s.loose == pytest.approx(1 / 3)
    assert s.cer == pytest.approx((5 + 1 + 2) / 12)
    assert score([], []).n == 0


def test_cached_dataset_holds_the_first_samples_in_memory() -> None:
    full = open_dataset(EXAMPLES)
    cached = full.cached(3)
    assert len(cached) == 3 and cached.kind == full.kind
    first = [s.name for s in islice(iter(full), 3)]
    assert [s.name for s in cached] == first and [s.name for s in cached] == first  # iterable twice
