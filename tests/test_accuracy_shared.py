"""Accuracy smoke tests on subsets of ../shared/data against EasyOCR's own outputs (same weights).

Skipped when the shared folder is absent. On each subset our loose accuracy
must be at least EasyOCR's on the same images minus 2 points. On MNIST, where
both pipelines feed the network the same pixels (36x36 -> 64x64, no padding),
our texts must be EasyOCR's texts: that checks the port itself (network,
allowlist masking, decoding). Elsewhere our resizing deliberately differs
(area interpolation when shrinking, padding frames ignored), see docs/studies/accuracy.md.
"""

from __future__ import annotations

from itertools import islice

import pytest

from crnn import Recognizer
from ocr.data.datasets import open_dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import score
from tests.conftest import SHARED_REFERENCE, shared_set

SUBSET = 150
SETS = [
    "iiit5k_test_even_scenes",
    "iiit5k_train_even_scenes",
    "svt_cs_train",
    "cute80_cs",
    "openalpr_us_plates_part1",
    "openalpr_endtoend_plate_crops_part1",
    "sroie_receipt_lines_part1",
    "uw3_lines_calamari_train",
    "mnist_t10k_first5000",
]


def easyocr_texts(name: str) -> dict[str, str]:
    path = SHARED_REFERENCE / "easyocr" / f"{name}.tsv"
    if not path.is_file():
        pytest.skip(f"no EasyOCR reference outputs at {path}")
    rows = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


@pytest.fixture(scope="module")
def auto_recognizer(loaded_model) -> Recognizer:
    return Recognizer(loaded_model, device="cpu", precision="auto")


@pytest.mark.parametrize("name", SETS)
def test_subset_accuracy_matches_easyocr(name: str, auto_recognizer: Recognizer) -> None:
    dataset = open_dataset(shared_set(name))
    theirs = easyocr_texts(name)
    allow = "0123456789" if dataset.kind == "mnist-idx" else None
    result = evaluate(auto_recognizer, dataset, allow, limit=SUBSET, progress=False)
    labels = [p.label for p in result.predictions]
    ours = [p.text for p in result.predictions]
    reference = [theirs[p.name] for p in result.predictions]
    assert result.scores.loose >= score(reference, labels).loose - 0.02
    if dataset.kind == "mnist-idx":
        agreement = sum(a == b for a, b in zip(ours, reference)) / len(ours)
        assert agreement >= 0.95, f"only {agreement:.1%} of texts equal EasyOCR's"


def test_sets_have_the_documented_sizes() -> None:
    assert len(open_dataset(shared_set("iiit5k_test_even_scenes"))) == 1471
    assert len(list(islice(iter(open_dataset(shared_set("mnist_t10k_first5000"))), 3))) == 3
