"""Accuracy measures for text lines: exact, loose (case-insensitive alphanumeric), CER."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def loose(text: str) -> str:
    """Lower-case and keep only a-z and 0-9 (the usual scene-text benchmark protocol)."""
    return _NOT_ALNUM.sub("", text.lower())


@dataclass(frozen=True)
class Scores:
    """Accuracy of predictions against labels."""

    n: int
    exact: float
    loose: float
    cer: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score(predictions: Sequence[str], labels: Sequence[str]) -> Scores:
    """Exact-match and loose accuracy, and CER = total edit distance / total label length."""
    if len(predictions) != len(labels):
        raise ValueError("predictions and labels differ in length")
    n = len(labels)
    if n == 0:
        return Scores(0, 0.0, 0.0, 0.0)
    exact = sum(p == t for p, t in zip(predictions, labels))
    loose_hits = sum(loose(p) == loose(t) for p, t in zip(predictions, labels))
    edits = sum(Levenshtein.distance(p, t) for p, t in zip(predictions, labels))
    chars = sum(len(t) for t in labels)
    return Scores(n, exact / n, loose_hits / n, edits / max(chars, 1))


def loose_cer(predictions: Sequence[str], labels: Sequence[str]) -> float:
    """CER on the texts as loose accuracy compares them (``loose``: case, spaces and punctuation ignored)."""
    edits = sum(Levenshtein.distance(loose(p), loose(t)) for p, t in zip(predictions, labels, strict=True))
    return edits / max(1, sum(len(loose(t)) for t in labels))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def net_lines_better(predictions: Sequence[str], baseline: Sequence[str], labels: Sequence[str]) -> int:
    """Lines ``predictions`` read with fewer character errors than ``baseline``, minus lines it reads with more."""
    ours = [Levenshtein.distance(p, t) for p, t in zip(predictions, labels)]
    theirs = [Levenshtein.distance(p, t) for p, t in zip(baseline, labels)]
    return sum(a < b for a, b in zip(ours, theirs)) - sum(a > b for a, b in zip(ours, theirs))


def bootstrap(
    predictions: Sequence[str], labels: Sequence[str], seed: int = 0, rounds: int = 2000
) -> dict[str, Interval]:
    """Exact, loose and CER with 95% percentile-bootstrap intervals over images.

    Resampling runs in chunks of rounds, so memory stays at ``100 x n`` indices.
    """
    n = len(labels)
    if n == 0:
        return {key: Interval(0.0, 0.0, 0.0) for key in ("exact", "loose", "cer")}
    pairs = list(zip(predictions, labels))
    exact = np.array([p == t for p, t in pairs], dtype=float)
    loose_ok = np.array([loose(p) == loose(t) for p, t in pairs], dtype=float)
    edits = np.array([Levenshtein.distance(p, t) for p, t in pairs], dtype=float)
    lengths = np.array([len(t) for _, t in pairs], dtype=float)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = {"exact": [], "loose": [], "cer": []}
    for done in range(0, rounds, 100):
        idx = rng.integers(0, n, (min(100, rounds - done), n))
        samples["exact"].append(exact[idx].mean(1))
        samples["loose"].append(loose_ok[idx].mean(1))
        samples["cer"].append(edits[idx].sum(1) / np.maximum(lengths[idx].sum(1), 1))
    values = {"exact": exact.mean(), "loose": loose_ok.mean(), "cer": edits.sum() / max(lengths.sum(), 1)}
    intervals = {}
    for key, value in values.items():
        low, high = np.percentile(np.concatenate(samples[key]), [2.5, 97.5])
        intervals[key] = Interval(float(value), float(low), float(high))
    return intervals


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins (by count)."""
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if len(conf) == 0:
        return 0.0
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(conf[inside].mean() - hit[inside].mean())
    return float(total / len(conf))


def ece_noise_floor(confidences: Sequence[float], draws: int = 200, seed: int = 0, bins: int = 15
                    ) -> tuple[float, float]:
    """The ECE a *perfectly* calibrated model with these confidences shows from sampling noise alone.

    Each draw marks line i right with probability ``confidences[i]``; returns
    the mean and the 95th percentile of the ECE over the draws. On a few
    hundred lines this floor is several points: an ECE below it cannot be
    told apart from perfect calibration.
    """
    conf = np.asarray(confidences, dtype=float)
    rng = np.random.default_rng(seed)
    values = [expected_calibration_error(conf, rng.random(len(conf)) < conf, bins) for _ in range(draws)]
    return float(np.mean(values)), float(np.percentile(values, 95))


def risk_coverage(
    confidences: Sequence[float], correct: Sequence[bool], coverages: Sequence[float] = (1.0, 0.95, 0.9, 0.8, 0.7, 0.5)
) -> list[dict[str, float]]:
    """For each coverage, the confidence threshold that keeps that share of lines and the error rate of the kept."""
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    rows = []
    for coverage in coverages:
        kept = max(1, round(coverage * len(conf))) if len(conf) else 0
        chosen = order[:kept]
        rows.append({"coverage": float(coverage), "threshold": float(conf[chosen].min()) if kept else 1.0,
                     "error": float(1.0 - hit[chosen].mean()) if kept else 0.0})
    return rows
