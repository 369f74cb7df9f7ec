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


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap(
    predictions: Sequence[str], labels: Sequence[str], seed: int = 0, rounds: int = 2000
) -> dict[str, Interval]:
    """Exact, loose and CER with 95% percentile-bootstrap intervals over images."""
    labels_arr = list(labels)
    exact = np.array([p == t for p, t in zip(predictions, labels_arr)], dtype=float)
    loose_ok = np.array([loose(p) == loose(t) for p, t in zip(predictions, labels_arr)], dtype=float)
    edits = np.array([Levenshtein.distance(p, t) for p, t in zip(predictions, labels_arr)], dtype=float)
    lengths = np.array([max(len(t), 0) for t in labels_arr], dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels_arr), (rounds, len(labels_arr)))

    def interval(values: np.ndarray, resampled: np.ndarray) -> Interval:
        low, high = np.percentile(resampled, [2.5, 97.5])
        return Interval(float(values), float(low), float(high))

    cer_all = edits.sum() / max(lengths.sum(), 1)
    cer_boot = edits[idx].sum(1) / np.maximum(lengths[idx].sum(1), 1)
    return {
        "exact": interval(exact.mean(), exact[idx].mean(1)),
        "loose": interval(loose_ok.mean(), loose_ok[idx].mean(1)),
        "cer": interval(cer_all, cer_boot),
    }
