"""A choice for whole pages, made by the paired rule on page lines: the recogniser's padding floor for page lines,
and the detector's page scale. The shared whole receipts are split into a choose half (even positions) and a report
half (odd positions).

Per half and variant: word F1 and seconds per page (``ocr.eval.pages``), and the paired rule on page lines: every
annotated line a detected line matches (IoU >= 0.5) is right or wrong (loose); gains and losses against the first
variant, with the one-sided binomial test that the variant reads worse.

    python scripts/bench/page_choice.py --variants floor=256 floor=128 floor=96
    python scripts/bench/page_choice.py --variants floor=256 default          # the page reader as shipped
    python scripts/bench/page_choice.py --variants default max_side=1600      # faster-paddle's detector scale

A variant is ``default`` or ``key=value[,key=value]``: ``floor`` pads every line (page lines and their second looks)
to at least that many columns (unset: the recogniser as it ships, whose page lines carry the model's
``page_min_width``); ``max_side`` caps the longer side of the page the detector sees (unset: the detector's own).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
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
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS  # noqa: E402

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


def parse_variant(text: str) -> dict[str, int]:
    """``"default"`` -> ``{}``; ``"floor=128,max_side=1600"`` -> ``{"floor": 128, "max_side": 1600}``."""
    if text == "default":
        return {}
    options = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in ("floor", "max_side") or not value.isdigit():
            raise SystemExit(f"bad variant {text!r}: use 'default' or key=value over floor and max_side")
        options[key] = int(value)
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["floor=256", "default"],
                        help="'default' or key=value[,key=value] over floor and max_side")
    parser.add_argument("--model", default="ppocrv6_small")
    parser.add_argument("--pages", type=Path, default=SHARED / "sroie_receipts_full_part1")
    args = parser.parse_args()
    pages = open_page_set(args.pages)
    halves = {"choose": pages[0::2], "report": pages[1::2]}
    print("| variant | half | word F1 | s/page | lines right | gains / losses vs first | one-sided p (worse) |")
    print("| ---: | --- | ---: | ---: | ---: | --- | ---: |")
    first: dict[str, list[bool]] = {}
    for variant in args.variants:
        options = parse_variant(variant)
        config = DETECTOR_SPECS[DEFAULT_DETECTOR].config
        if "max_side" in options:
            config = replace(config, max_side=options["max_side"])
        # A fresh detector and recogniser per variant: OpenVINO's first call at a new page size costs more, and no
        # variant should find the shapes compiled by another.
        detector = Detector(DEFAULT_DETECTOR, device="cpu", config=config)
        reader = PageReader(Recognizer(args.model, device="cpu", min_width=options.get("floor")), detector)
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
            print(f"| {variant} | {name} | {scores['word_f1']:.4f} | {seconds:.2f} | {sum(right)} of {len(right)} | "
                  f"{gains} / {losses} | {p:.2f} |", flush=True)


if __name__ == "__main__":
    main()
