"""Lines/s against line width (64 to 1,024 px) and threads (1, 2), per precision, in one run.

    python scripts/bench/scaling_table.py [--widths 64,128,256,512,1024] [--threads 1,2] [--precisions fp32 bf16 int8]

Each cell reads ``--lines`` synthetic lines of exactly that width (random
grey text-like noise, 64 px high, so no decoding or resizing) through
``Recognizer.recognize_prepared``: batching by the recogniser's own rules,
network and CTC decoding. The contrast retry is off: noise lines would all be
read twice, while real crops are retried about 6% of the time. Cells of one
width run back to back for every precision and thread count; medians of
``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from crnn import Recognizer
from crnn.preprocess import PreparedImage

ROOT = Path(__file__).resolve().parents[2]

def lines(width: int, count: int, seed: int) -> list[PreparedImage]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 64, width), dtype=np.uint8)
    return [PreparedImage(p, width, 64) for p in pixels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="64,128,256,512,1024")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--lines", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    widths = [int(w) for w in args.widths.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    recognizers = {p: Recognizer(precision=p, device="cpu", contrast_retry=None, polarity_retry=None)
                   for p in args.precisions}
    table: dict[tuple[str, int, int], float] = {}
    for width in widths:
        batch = lines(width, args.lines, width)
        for precision, recognizer in recognizers.items():
            for t in threads:
                torch.set_num_threads(t)
                recognizer.recognize_prepared(batch[:8])  # warm this shape
                rates = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    recognizer.recognize_prepared(batch)
                    rates.append(len(batch) / (time.perf_counter() - start))
                table[(precision, t, width)] = statistics.median(rates)
    print(f"lines/s; {args.lines} lines per cell, medians of {args.repeats}")
    print("| precision | threads | " + " | ".join(f"{w} px" for w in widths) + " |")
    print("| --- | ---: |" + " ---: |" * len(widths))
    for precision in recognizers:
        for t in threads:
            cells = " | ".join(f"{table[(precision, t, w)]:.0f}" for w in widths)
            print(f"| {precision} | {t} | {cells} |")


if __name__ == "__main__":
    main()
