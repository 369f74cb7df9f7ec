"""Polarity retry: loose accuracy and share of lines read twice, per confidence threshold, on every shared set.

    python scripts/polarity_study.py

Each set is read once as is and once inverted (fp32, no polarity retry); the
recogniser's rule (keep the inverted reading where the first one is below the
threshold and the inverted one is more confident) is then applied per
threshold. MNIST is read with --allow 0-9 and scored exact.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crnn import Recognizer  # noqa: E402
from crnn.preprocess import invert  # noqa: E402
from ocr.datasets import open_dataset  # noqa: E402
from ocr.metrics import loose  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = ("iiit5k_train_even_scenes", "mnist_t10k_first5000", "iiit5k_test_even_scenes", "svt_cs_train", "cute80_cs",
        "openalpr_us_plates_part1", "openalpr_endtoend_plate_crops_part1", "sroie_receipt_lines_part1",
        "uw3_lines_calamari_train")
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.01)


def _right(results, labels: list[str], exact: bool) -> np.ndarray:
    return np.array([(r.text == t) if exact else (loose(r.text) == loose(t)) for r, t in zip(results, labels)])


def main() -> None:
    recognizer = Recognizer("english_g2", precision="fp32", polarity_retry=0, calibrated=False)
    print("| set | no retry | " + " | ".join(f"below {t}" for t in THRESHOLDS) + " |")
    print("| --- | ---: |" + " ---: |" * len(THRESHOLDS))
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
        conf_flipped = np.array([r.confidence for r in flipped])
        cells = []
        for t in THRESHOLDS:
            take = (conf < t) & (conf_flipped > conf)
            cells.append(f"{np.where(take, ok_flipped, ok).mean():.3f} ({(conf < t).mean():.0%})")
        print(f"| {name} | {ok.mean():.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
