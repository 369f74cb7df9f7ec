"""Where a line's milliseconds go in `ocr eval`: decode, resize, batch, network, CTC decode, retries, the rest.

    python scripts/bench/profile_pipeline.py [DATASET] [--limit 600] [--model NAME] [--precisions fp32 bf16]
                                             [--repeats 3]

Runs the real loop behind ``ocr eval`` (``ocr.eval.lines.evaluate``) with
timers wrapped around the pipeline's own functions, so nothing is
re-implemented: image decoding (``to_pixels``), resizing to the model's height
(``resize_to_height``), padding + normalising + stacking a batch
(``stack_batch``), the network (``Recognizer.forward`` and ``_batch_logits`` minus the stacking),
allowlist masking, each frame's best class and its probability
(``best_path``), CTC decoding (greedy, ``labelled_result``), and the contrast retry's
share (lines retried, and the network passes they cost, which the network row
also includes). "other" is the loop's total minus the timed stages. Medians
of ``--repeats`` runs, in ms per line.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import crnn.preprocess as preprocess
import crnn.recognizer as recognizer_module
from crnn import Recognizer
from ocr.data.datasets import Dataset, open_dataset
from ocr.eval.lines import evaluate

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"
STAGES = ["decode", "resize", "batch", "network", "mask", "best path", "ctc decode", "calibration"]


class Timers:
    """Wraps functions with timers while active (``with Timers() as t: t.wrap(...)``); undoes every wrap on exit."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.retried = 0
        self._active: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[object, str, object | None]] = []

    def wrap(self, owner: object, name: str, stage: str, before=None) -> None:
        """Time ``owner.name`` under ``stage``; ``before(*args)`` runs first, untimed. A call inside another call
        timed under the same stage is not counted twice."""
        original = getattr(owner, name)
        self._undo.append((owner, name, vars(owner).get(name)))

        def timed(*args, **kwargs):
            if before is not None:
                before(*args)
            if self._active[stage]:
                return original(*args, **kwargs)
            self._active[stage] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._active[stage] -= 1
                self.seconds[stage] += time.perf_counter() - start

        setattr(owner, name, timed)

    def __enter__(self) -> Timers:
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, own in reversed(self._undo):
            if own is None:
                delattr(owner, name)  # it was inherited (e.g. a bound method): uncover it again
            else:
                setattr(owner, name, own)


def profile(recognizer: Recognizer, dataset: Dataset) -> tuple[dict[str, float], int, float]:
    """One timed run: (seconds per stage, lines retried, the loop's own seconds)."""

    def count_retried(images, masks, constraints, results, below, transform) -> None:
        timers.retried += sum(r.confidence < below for r in results)

    with Timers() as timers:
        timers.wrap(preprocess, "to_pixels", "decode")
        timers.wrap(preprocess, "resize_to_height", "resize")
        timers.wrap(recognizer_module, "stack_batch", "batch")
        timers.wrap(recognizer_module, "class_log_probs", "mask")
        timers.wrap(recognizer_module, "best_path", "best path")
        timers.wrap(recognizer_module, "labelled_result", "ctc decode")
        timers.wrap(recognizer, "forward", "forward")
        timers.wrap(recognizer, "_batch_logits", "forward")  # the plain reading's forward pass
        timers.wrap(recognizer, "_retry", "retry", before=count_retried)
        if recognizer.calibration is not None:
            timers.wrap(type(recognizer.calibration), "__call__", "calibration")
        result = evaluate(recognizer, dataset, progress=False)
    seconds = dict(timers.seconds)
    seconds["network"] = seconds.pop("forward", 0.0) - seconds.get("batch", 0.0)
    return seconds, timers.retried, result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--model", default=None, help="a bundled model (default: the default model)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                        help="int8 exists for english_g2 only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    dataset = open_dataset(args.dataset).cached(args.limit)
    n = len(dataset)
    rows = {}
    for precision in args.precisions:
        kwargs = {"model": args.model} if args.model else {}
        recognizer = Recognizer(precision=precision, device="cpu", threads=args.threads, **kwargs)
        runs = [profile(recognizer, dataset) for _ in range(args.repeats)]
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
