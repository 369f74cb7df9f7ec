"""``ocr bench``: in-process throughput per precision and batch size, side by side in one run."""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from itertools import islice
from typing import TextIO

from tqdm import tqdm

from crnn import InvalidImageError, Recognizer
from crnn.flops import forward_flops
from crnn.preprocess import PreparedImage
from crnn.weights import load_model
from ocr.config import BenchConfig
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import score


@dataclass(frozen=True)
class BenchRow:
    precision: str
    runtime: str
    batch_size: int
    lines_per_s: float
    gflops_per_s: float
    speedup: float
    loose: float | None
    same_text_as_baseline: float


def _load_crops(config: BenchConfig, recognizer: Recognizer) -> tuple[list[PreparedImage], list[str]]:
    dataset = open_dataset(config.dataset)
    crops, labels = [], []
    for sample in islice(iter(dataset), config.limit):
        try:
            crops.append(recognizer.prepare(sample.image))
            labels.append(sample.label)
        except InvalidImageError:
            continue
    if not crops:
        raise ValueError(f"no readable images in {config.dataset}")
    return crops, labels


def run_bench(config: BenchConfig, out: TextIO | None = None) -> list[BenchRow]:
    """Time ``recognize_prepared`` over the same crops for every configuration.

    Rows are measured round-robin ``repeats`` times and the median is kept,
    so a burst of noise on a shared machine hits every row alike. The first
    row is the baseline: fp32, one image at a time. Decoding image files is
    done once up front and not timed.
    """
    out = out or sys.stdout
    opts = config.model
    loaded = load_model(opts.model, weights=opts.weights)
    rows = [("fp32", 1)] + [(p, b) for p in config.precisions for b in config.batch_sizes if (p, b) != ("fp32", 1)]
    recognizers = {
        (p, b): Recognizer(loaded, device=opts.device, precision=p, threads=opts.threads, batch_size=b,
                           runtime=opts.runtime)  # type: ignore[arg-type]
        for p, b in rows
    }
    baseline = recognizers[rows[0]]
    crops, labels = _load_crops(config, baseline)
    flop_cache: dict[int, int] = {}
    total_flops = 0
    for crop in crops:
        width = baseline.run_width(crop)
        if width not in flop_cache:
            flop_cache[width] = forward_flops(baseline.network, baseline.input_height, width,
                                              baseline.model.normalization.channels)
        total_flops += flop_cache[width]
    for rec in recognizers.values():  # warm-up: one-off allocations and kernel selection
        rec.recognize_prepared(crops[: min(len(crops), 64)])
    times: dict[tuple[str, int], list[float]] = {key: [] for key in rows}
    texts: dict[tuple[str, int], list[str]] = {}
    with tqdm(total=config.repeats * len(rows), desc="bench", unit="run", leave=False) as bar:
        for _ in range(config.repeats):
            for key in rows:
                start = time.perf_counter()
                results = recognizers[key].recognize_prepared(crops)
                times[key].append(time.perf_counter() - start)
                texts[key] = [r.text for r in results]
                bar.update()
    base_rate = len(crops) / statistics.median(times[rows[0]])
    has_labels = any(labels)
    table = []
    for key in rows:
        seconds = statistics.median(times[key])
        rate = len(crops) / seconds
        same = sum(a == b for a, b in zip(texts[key], texts[rows[0]])) / len(crops)
        table.append(
            BenchRow(
                precision=recognizers[key].precision,
                runtime=recognizers[key].runtime,
                batch_size=key[1],
                lines_per_s=rate,
                gflops_per_s=total_flops / seconds / 1e9,
                speedup=rate / base_rate,
                loose=score(texts[key], labels).loose if has_labels else None,
                same_text_as_baseline=same,
            )
        )
    if config.json:
        print(json.dumps({"n": len(crops), "repeats": config.repeats, "rows": [asdict(r) for r in table]}), file=out)
    else:
        device = baseline.device
        print(f"{len(crops)} crops from {config.dataset}, device {device}, median of {config.repeats} runs", file=out)
        header = ("precision", "runtime", "batch", "lines/s", "GFLOP/s", "speedup", "loose", "same")
        print("{:>9} {:>11} {:>5} {:>9} {:>8} {:>8} {:>6} {:>6}".format(*header), file=out)
        for r in table:
            loose = f"{r.loose:.3f}" if r.loose is not None else "-"
            print(
                f"{r.precision:>9} {r.runtime:>11} {r.batch_size:>5} {r.lines_per_s:9.1f} {r.gflops_per_s:8.1f} "
                f"{r.speedup:7.2f}x {loose:>6} {r.same_text_as_baseline:6.3f}",
                file=out,
            )
    return table
