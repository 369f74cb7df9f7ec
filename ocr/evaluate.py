"""``ocr eval``: read a labelled set and score the predictions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import islice

from tqdm import tqdm

from crnn import InvalidImageError, Recognizer
from crnn.constrained import Constraint
from crnn.preprocess import PreparedImage
from ocr.datasets import Dataset
from ocr.metrics import Scores, score


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
