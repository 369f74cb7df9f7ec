"""Our reading loop against another engine on the same crops, in interleaved rounds: the shared part of
``bench_rapidocr.py`` and ``bench_tesseract.py`` (imported by them; not run on its own)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from crnn import Recognizer
from ocr.data.datasets import Dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import score


def race(theirs: Callable[[], tuple[float, list[str]]], recognizers: dict[str, Recognizer], dataset: Dataset,
         labels: list[str], repeats: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``repeats`` rounds, each reading every crop with the other engine (``theirs()``: seconds, texts) and then
    with each of ours (``ocr.eval.lines.evaluate``), so machine noise hits all alike.

    Returns lines/s per round and loose accuracy, keyed "theirs" and by our names.
    """
    rates: dict[str, list[float]] = {name: [] for name in ["theirs", *recognizers]}
    loose: dict[str, float] = {}
    for _ in range(repeats):
        seconds, texts = theirs()
        rates["theirs"].append(len(labels) / seconds)
        loose["theirs"] = score(texts, labels).loose
        for name, recognizer in recognizers.items():
            result = evaluate(recognizer, dataset, progress=False)
            rates[name].append(result.lines_per_s)
            loose[name] = result.scores.loose
    return rates, loose


def print_race(rates: dict[str, list[float]], loose: dict[str, float], their_label: str, against: str) -> None:
    """One row per engine: median lines/s, every round, loose accuracy, and speed over the other engine's."""
    base = statistics.median(rates["theirs"])
    width = max(len(their_label), *(len(f"ocr eval {n}") for n in rates)) + 2
    print(f"{'engine':>{width}} {'lines/s':>8} {'rounds':>24} {'loose':>6} {'vs ' + against:>14}")
    for name, values in rates.items():
        median = statistics.median(values)
        label = their_label if name == "theirs" else f"ocr eval {name}"
        print(f"{label:>{width}} {median:8.1f} {', '.join(f'{v:.0f}' for v in values):>24} {loose[name]:6.3f} "
              f"{median / base:13.2f}x")
