"""Polarity retry: loose accuracy and share of lines read twice, per confidence threshold, on every shared set.

    python scripts/studies/polarity_study.py

Each set is read once as is and once inverted (fp32, no polarity retry); the
recogniser's rule (keep the inverted reading where the first one is below the
threshold and the inverted one scores higher) is then applied per threshold,
for two scores: ``product`` (the line confidence, a product over characters,
which favours shorter readings) and ``per-char`` (its geometric mean over the
characters, ``confidence ** (1 / len)``). MNIST is read with --allow 0-9 and
scored exact; receipts also as their first 150 lines (the subset the accuracy
test holds against EasyOCR's outputs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from crnn import Recognizer
from crnn.preprocess import invert
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import loose

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
SETS = ("iiit5k_train_even_scenes", "mnist_t10k_first5000", "iiit5k_test_even_scenes", "svt_cs_train", "cute80_cs",
        "openalpr_us_plates_part1", "openalpr_endtoend_plate_crops_part1", "sroie_receipt_lines_part1",
        "uw3_lines_calamari_train")
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.01)


def _right(results, labels: list[str], exact: bool) -> np.ndarray:
    return np.array([(r.text == t) if exact else (loose(r.text) == loose(t)) for r, t in zip(results, labels)])


def per_char(results) -> np.ndarray:
    """Geometric mean of the character confidences: a line score that does not favour short readings."""
    return np.array([r.confidence ** (1 / max(1, len(r.text))) for r in results])


def main() -> None:
    recognizer = Recognizer("english_g2", precision="fp32", polarity_retry=0, calibrated=False)
    print("| set | score | no retry | " + " | ".join(f"below {t}" for t in THRESHOLDS) + " |")
    print("| --- | --- | ---: |" + " ---: |" * len(THRESHOLDS))
    for name in SETS:
        if not (DATA / name).is_dir():
            continue
        data = list(open_dataset(DATA / name))
        mnist = name.startswith("mnist")
        prepared = [recognizer.prepare(s.image) for s in data]
        first = recognizer.recognize_prepared(prepared, "0123456789" if mnist else None)
        flipped = recognizer.recognize_prepared([replace(p, pixels=invert(p.pixels)) for p in prepared],
                                                "0123456789" if mnist else None)
        labels = [s.label for s in data]
        ok, ok_flipped = _right(first, labels, mnist), _right(flipped, labels, mnist)
        conf = np.array([r.confidence for r in first])
        parts = [(name, slice(None))] + ([(f"{name} (first 150)", slice(0, 150))] if name.startswith("sroie") else [])
        for label, rows in parts:
            for rule, (a, b) in {"product": (conf, np.array([r.confidence for r in flipped])),
                                 "per-char": (per_char(first), per_char(flipped))}.items():
                cells = []
                for t in THRESHOLDS:
                    take = ((conf < t) & (b > a))[rows]
                    kept = np.where(take, ok_flipped[rows], ok[rows]).mean()
                    cells.append(f"{kept:.3f} ({(conf[rows] < t).mean():.0%})")
                print(f"| {label} | {rule} | {ok[rows].mean():.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
