"""Calibration measures on hand-made numbers."""

from __future__ import annotations

import pytest

from ocr.eval.metrics import ece_noise_floor, expected_calibration_error, net_lines_better, risk_coverage, score


def test_calibration_error_and_risk_coverage_on_hand_made_numbers() -> None:
    # Two bins: 0.95 (4 lines, 3 right: gap 0.2) and 0.55 (4 lines, 2 right: gap 0.05).
    confidences = [0.95] * 4 + [0.55] * 4
    correct = [True, True, True, False, True, True, False, False]
    assert expected_calibration_error(confidences, correct) == pytest.approx((4 * 0.2 + 4 * 0.05) / 8)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # perfectly calibrated extremes
    rows = risk_coverage(confidences, correct, coverages=(1.0, 0.5))
    assert rows[0] == {"coverage": 1.0, "threshold": 0.55, "error": 3 / 8}
    assert rows[1] == {"coverage": 0.5, "threshold": 0.95, "error": 0.25}


def test_ece_noise_floor_shrinks_with_more_lines() -> None:
    few, few95 = ece_noise_floor([0.7] * 50 + [0.3] * 50)
    many, _ = ece_noise_floor([0.7] * 5000 + [0.3] * 5000)
    assert 0.02 < few <= few95 < 0.2  # 100 lines: a perfect calibration still shows several points of ECE
    assert many < few / 5
    assert ece_noise_floor([1.0, 0.0] * 10) == (0.0, 0.0)  # certain confidences: no noise at all


def test_net_lines_better_counts_lines_not_characters() -> None:
    labels = ["cat", "dog", "bird", "fish"]
    baseline = ["cat", "dg", "bxrd", "fsh"]
    assert net_lines_better(["cat", "dog", "bird", "fsh"], baseline, labels) == 2  # two lines fixed
    assert net_lines_better(["cot", "dog", "bxxd", "fish"], baseline, labels) == 0  # two fixed, two made worse
    assert net_lines_better(baseline, baseline, labels) == 0


def test_an_evaluation_summary_counts_failures_and_calibration() -> None:
    from ocr.eval.lines import Evaluation, Prediction, summarise

    predictions = [Prediction("a", "cat", "cat", 0.9), Prediction("b", "Dog", "dog", 0.8),
                   Prediction("c", "eel", "", 0.0, "rejected"), Prediction("d", "fox", "", 0.0, "undecodable")]
    summary = summarise(Evaluation(score([p.text for p in predictions], [p.label for p in predictions]),
                                   predictions, seconds=1.0))
    assert (summary.unreadable, summary.rejected) == (1, 1)
    assert summary.mean_confidence == pytest.approx(0.425)
    assert summary.ece == pytest.approx(expected_calibration_error([0.9, 0.8, 0.0, 0.0], [True, False, False, False]))
    assert summary.ece_loose < summary.ece  # "Dog" read "dog" is right when case does not count
    assert set(summary.intervals) == {"exact", "loose", "cer"} and summary.risk_coverage
