"""Accuracy measures for text lines: exact, loose (case-insensitive alphanumeric), CER."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

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
