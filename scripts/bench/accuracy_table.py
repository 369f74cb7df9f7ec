"""Score the model on every set in ../shared/data at fp32 and bf16 and print a Markdown table.

    python scripts/bench/accuracy_table.py [--data ../shared/data] [--reference ../shared/reference/easyocr/SUMMARY.md]

MNIST is read with the digits allowlist. EasyOCR's loose accuracy is read from
the reference summary when it is present.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from crnn import Recognizer
from crnn.recognizer import DEFAULT_CONTRAST_RETRY
from crnn.weights import load_model
from ocr.data.datasets import DatasetError, open_dataset
from ocr.eval.lines import evaluate

ROOT = Path(__file__).resolve().parents[2]


def reference_loose(summary: Path) -> dict[str, float]:
    """Set name -> loose accuracy from EasyOCR's SUMMARY.md table."""
    if not summary.is_file():
        return {}
    table = {}
    for line in summary.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"0?\.\d+", cells[3]):
            table[cells[0]] = float(cells[3])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    reference = ROOT.parent / "shared" / "reference" / "easyocr" / "SUMMARY.md"
    parser.add_argument("--reference", type=Path, default=reference)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--sets", nargs="+", metavar="NAME", help="only these sets (default: every set of lines)")
    parser.add_argument("--contrast-retry", type=float, default=DEFAULT_CONTRAST_RETRY,
                        help=f"re-read lines below this confidence with stretched contrast (0: off; default: "
                        f"{DEFAULT_CONTRAST_RETRY})")
    args = parser.parse_args()
    ref = reference_loose(args.reference)
    loaded = load_model()
    recognizers = {p: Recognizer(loaded, precision=p, contrast_retry=args.contrast_retry) for p in args.precisions}
    header = "| set | n | " + " | ".join(f"{p} exact | {p} loose | {p} CER" for p in args.precisions)
    print(header + " | EasyOCR loose | fp32 - EasyOCR (points) |")
    print("|" + " --- |" * (3 * len(args.precisions) + 4))
    skipped = []
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir() and (not args.sets or p.name in args.sets)):
        try:
            dataset = open_dataset(folder)
        except DatasetError:
            skipped.append(folder.name)  # not a set of cropped lines (e.g. whole receipts)
            continue
        allow = "0123456789" if dataset.kind == "mnist-idx" else None
        cells, first_loose = [], None
        for recognizer in recognizers.values():
            s = evaluate(recognizer, dataset, allow, progress=False).scores
            first_loose = s.loose if first_loose is None else first_loose
            cells.append(f"{s.exact:.3f} | {s.loose:.3f} | {s.cer:.3f}")
        theirs = ref.get(folder.name)
        delta = f"{100 * (first_loose - theirs):+.1f}" if theirs is not None else "-"
        theirs_text = f"{theirs:.3f}" if theirs is not None else "-"
        print(f"| {folder.name} | {len(dataset)} | " + " | ".join(cells) + f" | {theirs_text} | {delta} |", flush=True)
    if skipped:
        print(f"\nNot sets of cropped lines, skipped: {', '.join(skipped)}")


if __name__ == "__main__":
    main()
