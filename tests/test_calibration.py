"""Calibrated confidence and rejection below a minimum confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crnn import Recognizer
from crnn import calibration as calibration_module
from crnn.calibration import Calibration
from tests.conftest import example_bytes


@pytest.mark.parametrize("method", ["platt", "isotonic", "beta"])
def test_fit_is_monotone_and_matches_the_observed_rate(method: str) -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 4000)
    correct = rng.uniform(0, 1, 4000) < raw ** 2  # over-confident scores: right with probability raw^2
    cal = Calibration.fit(raw, correct, "synthetic", method)
    values = [cal(x) for x in np.linspace(0, 1, 101)]
    assert all(b > a for a, b in zip(values, values[1:])) if method != "isotonic" else \
        all(b >= a for a, b in zip(values, values[1:]))
    assert cal(0.5) == pytest.approx(0.25, abs=0.08) and cal(0.9) == pytest.approx(0.81, abs=0.08)
    again = Calibration.from_json(cal.to_json())
    assert again == cal


def test_beta_fits_a_map_that_platt_cannot() -> None:
    """Right with probability sigmoid(2 ln s - 0.3 ln(1 - s) + 0.5): two slopes, which one Platt slope cannot follow."""
    rng = np.random.default_rng(1)
    raw = rng.uniform(0.001, 0.999, 20000)

    def truth(s: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(2.0 * np.log(s) - 0.3 * np.log(1 - s) + 0.5)))

    correct = rng.uniform(0, 1, raw.size) < truth(raw)
    grid = np.linspace(0.02, 0.98, 49)
    errors = {method: np.abs([Calibration.fit(raw, correct, "synthetic", method)(x) for x in grid] - truth(grid)).max()
              for method in ("platt", "beta")}
    assert errors["beta"] < 0.03 < errors["platt"]


def test_bad_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration((0.0, 1.0), (0.8, 0.2))
    with pytest.raises(ValueError, match="two"):
        Calibration((0.5,), (0.5,))


def test_recognizer_reports_calibrated_confidence_and_rejects_below_the_minimum(tmp_path: Path, monkeypatch,
                                                                               loaded_model) -> None:
    (tmp_path / "english_g2.json").write_text(Calibration((0.0, 1.0), (0.0, 0.5), "halves").to_json())
    monkeypatch.setattr(calibration_module, "TABLES", tmp_path)
    image = example_bytes(0)  # "HELLO", read with high confidence
    raw = Recognizer(loaded_model, device="cpu", precision="fp32", calibrated=False).recognize([image])[0]
    cal = Recognizer(loaded_model, device="cpu", precision="fp32")
    read = cal.recognize([image])[0]
    assert raw.raw_confidence is None and read.raw_confidence == pytest.approx(raw.confidence)
    assert read.confidence == pytest.approx(raw.confidence / 2) and read.text == raw.text == "HELLO"
    prepared = [cal.prepare(image)] * 2
    kept, rejected = cal.recognize_prepared(prepared, min_confidence=[None, 0.6])
    assert kept.text == "HELLO" and not kept.rejected
    assert rejected.rejected and rejected.text == "" and rejected.confidence == pytest.approx(read.confidence)
