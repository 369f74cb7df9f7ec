"""Where a line's milliseconds go in `ocr eval`: decode, resize, batch, network, CTC decode, retries, the rest.

    python scripts/profile_pipeline.py [DATASET] [--limit 600] [--precisions fp32 bf16 int8] [--repeats 3]

Runs the real loop behind ``ocr eval`` (``ocr.evaluate.evaluate``) with
timers wrapped around the pipeline's own functions, so nothing is
re-implemented: image decoding (``to_gray``), resizing to 64 px
(``resize_to_height``), padding + normalising + stacking a batch
(``stack_batch``), the network (``Recognizer.forward`` minus the stacking),
softmax + allowlist masking, CTC decoding (greedy), and the contrast retry's
share (lines retried, and the network passes they cost, which the network row
also includes). "other" is the loop's total minus the timed stages. Medians
of ``--repeats`` runs, in ms per line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import crnn.preprocess as preprocess  # noqa: E402
import crnn.recognizer as recognizer_module  # noqa: E402
from crnn import Recognizer  # noqa: E402
from ocr.datasets import Dataset, open_dataset  # noqa: E402
from ocr.evaluate import evaluate  # noqa: E402

DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"
STAGES = ["decode", "resize", "batch", "network", "softmax+mask", "ctc decode", "calibration"]


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.retried = 0

    def wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        setattr(owner, name, timed)


def profile(recognizer: Recognizer, dataset: Dataset) -> tuple[dict[str, float], int, float]:
    """One timed run: (seconds per stage, lines retried, the loop's own seconds)."""
    timers = Timers()
    timers.wrap(preprocess, "to_gray", "decode")
    timers.wrap(preprocess, "resize_to_height", "resize")
    timers.wrap(recognizer_module, "stack_batch", "batch")
    timers.wrap(recognizer_module, "masked_probabilities", "softmax+mask")
    timers.wrap(recognizer_module, "greedy_decode", "ctc decode")
    original_forward, original_retry = recognizer.forward, recognizer._retry

    def forward(images, width):
        start = time.perf_counter()
        try:
            return original_forward(images, width)
        finally:
            timers.seconds["forward"] += time.perf_counter() - start

    def retry(images, masks, constraints, results, below, transform):
        timers.retried += sum(r.confidence < below for r in results)
        start = time.perf_counter()
        try:
            return original_retry(images, masks, constraints, results, below, transform)
        finally:
            timers.seconds["retry"] += time.perf_counter() - start

    recognizer.forward, recognizer._retry = forward, retry  # type: ignore[method-assign]
    if recognizer.calibration is not None:
        calibration = recognizer.calibration
        timers.wrap(type(calibration), "__call__", "calibration")
    try:
        result = evaluate(recognizer, dataset, progress=False)
    finally:
        del recognizer.forward, recognizer._retry  # the module-level wrappers are undone by the caller
    seconds = dict(timers.seconds)
    seconds["network"] = seconds.pop("forward", 0.0) - seconds.get("batch", 0.0)
    return seconds, timers.retried, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    dataset = open_dataset(args.dataset).cached(args.limit)
    n = len(dataset)
    rows = {}
    for precision in args.precisions:
        recognizer = Recognizer(precision=precision, device="cpu", threads=args.threads)
        runs = []
        for _ in range(args.repeats):
            originals = {name: getattr(preprocess, name) for name in ("to_gray", "resize_to_height")}
            originals |= {name: getattr(recognizer_module, name)
                          for name in ("stack_batch", "masked_probabilities", "greedy_decode")}
            calibration_call = type(recognizer.calibration).__call__ if recognizer.calibration else None
            try:
                runs.append(profile(recognizer, dataset))
            finally:
                for name in ("to_gray", "resize_to_height"):
                    setattr(preprocess, name, originals[name])
                for name in ("stack_batch", "masked_probabilities", "greedy_decode"):
                    setattr(recognizer_module, name, originals[name])
                if calibration_call is not None:
                    type(recognizer.calibration).__call__ = calibration_call  # type: ignore[method-assign]
        rows[precision] = runs
    print(f"{n} crops of {args.dataset.name}; {args.threads} threads; ms per line, medians of {args.repeats} runs")
    print("| stage | " + " | ".join(rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for stage in [*STAGES, "retry (included above)", "other", "total", "lines/s", "lines retried"]:
        cells = []
        for runs in rows.values():
            if stage == "total":
                value = statistics.median(1000 * total / n for _, _, total in runs)
            elif stage == "lines/s":
                cells.append(f"{statistics.median(n / total for _, _, total in runs):.0f}")
                continue
            elif stage == "lines retried":
                cells.append(f"{runs[0][1]} ({100 * runs[0][1] / n:.0f}%)")
                continue
            elif stage == "other":
                value = statistics.median(1000 * (total - sum(s.get(k, 0.0) for k in STAGES)) / n
                                          for s, _, total in runs)
            elif stage.startswith("retry"):
                value = statistics.median(1000 * s.get("retry", 0.0) / n for s, _, _ in runs)
            else:
                value = statistics.median(1000 * s.get(stage, 0.0) / n for s, _, _ in runs)
            cells.append(f"{value:.2f}")
        print(f"| {stage} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
