"""Fit the int8 activation ranges of a registered model and (with --write) ship them.

    python scripts/tools/fit_int8.py [--model english_g2] [--real ../shared/data/iiit5k_train_even_scenes]
                               [--real-lines 256] [--rendered-lines 128] [--write]

Runs the model's convolutional stack over real training crops (never a test
set) plus degraded rendered words in both polarities, records each
activation's range (PyTorch's x86 histogram observers) and writes them to
``crnn/calibrations/<model>_int8.pt`` tied to the weights' SHA-256. Then
check the accuracy with ``python scripts/bench/accuracy_table.py --precisions fp32
bf16 int8`` before setting ``int8_validated`` in ``crnn/specs.py``.
"""

from __future__ import annotations

import argparse
from itertools import islice
from pathlib import Path

from crnn import Recognizer
from crnn.quantize import fit_stats, save_stats, stats_path
from ocr.adapt.general import PROBE_CHARS, hard_general_set
from ocr.data.datasets import open_dataset
from ocr.fonts import find_fonts

ROOT = Path(__file__).resolve().parents[2]

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="english_g2")
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "iiit5k_train_even_scenes")
    parser.add_argument("--real-lines", type=int, default=256)
    parser.add_argument("--rendered-lines", type=int, default=128)
    parser.add_argument("--write", action="store_true", help=f"write {stats_path('MODEL').name}")
    args = parser.parse_args()

    recognizer = Recognizer(args.model, device="cpu", precision="fp32")
    images = [s.image for s in islice(iter(open_dataset(args.real)), args.real_lines)]
    rendered, _ = hard_general_set(find_fonts(PROBE_CHARS), count=args.rendered_lines, seed=7)
    prepared = recognizer.prepare_many(images + rendered)
    batches = [tensor for _, tensor in recognizer.input_batches(prepared)]
    stats = fit_stats(recognizer.model.network, batches)
    print(f"observed {len(images)} real and {len(rendered)} rendered lines in {len(batches)} batches; "
          f"{len(stats)} observer tensors")
    if args.write:
        path = stats_path(args.model)
        save_stats(stats, recognizer.model.sha256, path)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
