"""Is a lower precision safe for a model? Every shared set read at fp32 and at each other precision, paired.

    python scripts/bench/precision_check.py [--model ppocrv6_small] [--precisions bf16 int8] [--data ../shared/data]

Per set: loose accuracy at each precision, the lines only fp32 reads right and the lines only the other
precision reads right (loose), and McNemar's exact p-value that the other precision is worse. The rule
``precision="auto"`` relies on (``ModelSpec.bf16_validated``): not worse than fp32 on any set by the paired test
(one-sided p < 0.05) and within 1 point loose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scipy.stats import binomtest

from crnn import Recognizer
from ocr.data.datasets import DatasetError, open_dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import loose

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ppocrv6_small")
    parser.add_argument("--precisions", nargs="+", default=["bf16"])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    recognizers = {p: Recognizer(args.model, device="cpu", precision=p) for p in ["fp32", *args.precisions]}
    print(f"{args.model}: loose accuracy; 'fp32 only' / 'other only' = lines only that precision reads right")
    print("| set | n | fp32 | " + " | ".join(f"{p} | fp32 only | {p} only | p (worse)" for p in args.precisions)
          + " | passes |")
    print("|" + " --- |" * (3 + 4 * len(args.precisions) + 1))
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        try:
            dataset = open_dataset(folder)
        except DatasetError:
            continue
        allow = "0123456789" if dataset.kind == "mnist-idx" else None
        right = {}
        for precision, recognizer in recognizers.items():
            predictions = evaluate(recognizer, dataset, allow, progress=False).predictions
            right[precision] = [loose(p.text) == loose(p.label) for p in predictions]
        n = len(right["fp32"])
        cells, passes = [f"{sum(right['fp32']) / n:.3f}"], True
        for precision in args.precisions:
            only_fp32 = sum(a and not b for a, b in zip(right["fp32"], right[precision]))
            only_other = sum(b and not a for a, b in zip(right["fp32"], right[precision]))
            discordant = only_fp32 + only_other
            p = binomtest(only_fp32, discordant, 0.5, alternative="greater").pvalue if discordant else 1.0
            drop = (sum(right["fp32"]) - sum(right[precision])) / n
            passes &= p >= 0.05 and drop <= 0.01
            cells += [f"{sum(right[precision]) / n:.3f}", str(only_fp32), str(only_other), f"{p:.3f}"]
        print(f"| {folder.name} | {n} | " + " | ".join(cells) + f" | {'yes' if passes else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
