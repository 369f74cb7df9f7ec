"""``ocr eval``: read a labelled set and score the predictions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import islice
from statistics import fmean

from tqdm import tqdm

from crnn import InvalidImageError, Recognizer
from crnn.constrained import Constraint
from crnn.preprocess import PreparedImage
from ocr.data.datasets import Dataset
from ocr.eval.metrics import (
    Interval,
    Scores,
    bootstrap,
    expected_calibration_error,
    loose,
    risk_coverage,
    score,
)


@dataclass(frozen=True)
class Prediction:
    name: str
    label: str
    text: str
    confidence: float
    error: str = ""


@dataclass(frozen=True)
class Evaluation:
    scores: Scores
    predictions: list[Prediction]
    seconds: float

    @property
    def lines_per_s(self) -> float:
        return self.scores.n / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class EvalSummary:
    """What ``ocr eval`` reports beyond the scores: failures, bootstrap intervals and calibration."""

    unreadable: int
    rejected: int
    #: Exact, loose and CER with 95% percentile-bootstrap intervals over images.
    intervals: dict[str, Interval]
    mean_confidence: float
    #: Expected calibration error against exact and against loose matches.
    ece: float
    ece_loose: float
    risk_coverage: list[dict[str, float]]


def summarise(evaluation: Evaluation) -> EvalSummary:
    """Counts of unreadable and rejected lines, bootstrap intervals and calibration errors of an evaluation."""
    predictions = evaluation.predictions
    rejected = sum(1 for p in predictions if p.error == "rejected")
    confidences = [p.confidence for p in predictions]
    exact_hits = [p.text == p.label for p in predictions]
    loose_hits = [loose(p.text) == loose(p.label) for p in predictions]
    return EvalSummary(
        unreadable=sum(1 for p in predictions if p.error) - rejected,
        rejected=rejected,
        intervals=bootstrap([p.text for p in predictions], [p.label for p in predictions]),
        mean_confidence=fmean(confidences) if confidences else 0.0,
        ece=expected_calibration_error(confidences, exact_hits),
        ece_loose=expected_calibration_error(confidences, loose_hits),
        risk_coverage=risk_coverage(confidences, exact_hits),
    )


def evaluate(
    recognizer: Recognizer,
    dataset: Dataset,
    allowlist: str | None = None,
    limit: int | None = None,
    chunk: int = 256,
    progress: bool = True,
    constraint: Constraint | None = None,
    min_confidence: float | None = None,
) -> Evaluation:
    """Recognise every sample (bad images count as empty readings) and score against the labels.

    The clock covers decoding, preprocessing and recognition.
    """
    recognizer.warmup()
    total = min(len(dataset), limit) if limit is not None else len(dataset)
    samples = islice(iter(dataset), total)
    predictions: list[Prediction] = []
    seconds = 0.0
    with tqdm(total=total, unit="line", disable=not progress, desc="eval", leave=False) as bar:
        while True:
            block = list(islice(samples, chunk))
            if not block:
                break
            start = time.perf_counter()
            prepared: list[PreparedImage] = []
            errors: dict[int, str] = {}
            for i, sample in enumerate(block):
                try:
                    prepared.append(recognizer.prepare(sample.image))
                except InvalidImageError as exc:
                    errors[i] = str(exc)
            results = iter(recognizer.recognize_prepared(prepared, allowlist, constraint, min_confidence))
            seconds += time.perf_counter() - start
            for i, sample in enumerate(block):
                if i in errors:
                    predictions.append(Prediction(sample.name, sample.label, "", 0.0, errors[i]))
                else:
                    r = next(results)
                    predictions.append(Prediction(sample.name, sample.label, r.text, r.confidence,
                                                  "rejected" if r.rejected else ""))
            bar.update(len(block))
    scores = score([p.text for p in predictions], [p.label for p in predictions])
    return Evaluation(scores, predictions, seconds)
