"""The adapt study's splits (scripts/studies/adapt_study.py): what each set hands to `ocr adapt` and keeps unseen."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_set

_SPEC = importlib.util.spec_from_file_location("adapt_study", ROOT / "scripts" / "studies" / "adapt_study.py")
adapt_study = sys.modules["adapt_study"] = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(adapt_study)


@pytest.mark.parametrize(("name", "per_class"), [("mnist", 8), ("mnist-16", 16)])
def test_mnist_splits_label_k_digits_a_class_and_keep_the_rest_unseen(
    tmp_path: Path, name: str, per_class: int
) -> None:
    shared_set("mnist_t10k_first5000")
    split = adapt_study.make_split(name, 1, tmp_path)
    rows = [line.split("\t") for line in (split.adapt_dir / "gt.tsv").read_text().splitlines()]
    assert Counter(label for _, label in rows) == {str(d): per_class for d in range(10)}
    assert len(split.unseen) == 5000 - 10 * per_class
    assert split.allow == "0123456789" and split.metric == "exact"
    # Deterministic per seed: the same split twice.
    again = adapt_study.make_split(name, 1, tmp_path / "again")
    assert (again.adapt_dir / "gt.tsv").read_text().replace(str(tmp_path / "again"), str(tmp_path)) == \
        (split.adapt_dir / "gt.tsv").read_text()


def test_an_unknown_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown set 'mnist-x'"):
        adapt_study.make_split("mnist-x", 1, tmp_path)


def test_more_digits_a_class_than_the_rarest_digit_has_are_refused(tmp_path: Path) -> None:
    shared_set("mnist_t10k_first5000")
    with pytest.raises(SystemExit, match="at most 455 digits a class"):
        adapt_study.make_split("mnist-456", 1, tmp_path)
