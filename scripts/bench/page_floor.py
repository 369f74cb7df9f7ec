"""Would page lines tolerate a narrower padding floor than crops? The same detections read at each floor, on the
shared whole receipts split into a choose half (even positions) and a report half (odd positions).

Per half and floor: word F1 and seconds per page (``ocr.eval.pages``), and the paired rule on page lines: every
detected line matched to an annotated one (IoU >= 0.5) is right or wrong (loose) at each floor; gains and losses
against the first floor, with the one-sided binomial test that the narrower floor reads worse.

    python scripts/bench/page_floor.py --floors 256 128 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from crnn import Recognizer  # noqa: E402
from crnn.preprocess import to_gray  # noqa: E402
from ocr.data.page_sets import open_page_set  # noqa: E402
from ocr.eval.metrics import loose  # noqa: E402
from ocr.eval.page_metrics import match_boxes  # noqa: E402
from ocr.eval.pages import evaluate_pages  # noqa: E402
from textdet import Detector, PageReader  # noqa: E402
from textdet.specs import DEFAULT_DETECTOR  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def line_outcomes(reader: PageReader, pages) -> list[bool]:
    """Right or wrong (loose) for each annotated line a detected line matches, in annotation order."""
    outcomes = []
    for page in pages:
        truth = [t for t in page.lines if not t.dont_care]
        lines = reader.read([to_gray(page.image_path.read_bytes())])[0]
        pairs = match_boxes([np.array(line.box, np.float32) for line in lines], [t.box for t in truth])
        outcomes += [loose(lines[i].text) == loose(truth[j].text) for i, j in sorted(pairs, key=lambda p: p[1])]
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--floors", type=int, nargs="+", default=[256, 128, 96])
    parser.add_argument("--model", default="ppocrv6_small")
    parser.add_argument("--pages", type=Path, default=SHARED / "sroie_receipts_full_part1")
    args = parser.parse_args()
    pages = open_page_set(args.pages)
    detector = Detector(DEFAULT_DETECTOR, device="cpu")
    halves = {"choose": pages[0::2], "report": pages[1::2]}
    print("| floor | half | word F1 | s/page | lines right | gains / losses vs first | one-sided p (worse) |")
    print("| ---: | --- | ---: | ---: | ---: | --- | ---: |")
    first: dict[str, list[bool]] = {}
    for floor in args.floors:
        reader = PageReader(Recognizer(args.model, device="cpu", min_width=floor), detector)
        evaluate_pages(reader, pages[:1], progress=False)  # warm up
        for name, subset in halves.items():
            start = time.perf_counter()
            scores = evaluate_pages(reader, subset, progress=False).scores
            seconds = (time.perf_counter() - start) / len(subset)
            right = line_outcomes(reader, subset)
            base = first.setdefault(name, right)
            gains = sum(b and not a for a, b in zip(base, right))
            losses = sum(a and not b for a, b in zip(base, right))
            p = binomtest(losses, gains + losses, 0.5, alternative="greater").pvalue if gains + losses else 1.0
            print(f"| {floor} | {name} | {scores['word_f1']:.4f} | {seconds:.2f} | {sum(right)} of {len(right)} | "
                  f"{gains} / {losses} | {p:.2f} |", flush=True)


if __name__ == "__main__":
    main()
