"""`ocr export` round trip on every shared set: ONNX Runtime against PyTorch, texts and logits.

    python scripts/bench/onnx_parity.py [--data ../shared/data] [--limit 0]

Exports the bundled model to ONNX fp32 and int8 (int8 calibrated on the
default rendered words), then reads every image of every set through
PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 on the same
width-bucketed batches, greedy-decoded by the same decoder (no allowlist).
Prints, per set: fp32 texts identical to PyTorch's, the largest |logit|
difference, and loose accuracy for each of the three.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from crnn import Recognizer
from crnn.decode import greedy_decode
from ocr.commands.export import ExportConfig, OnnxNetwork, run_export
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import loose

ROOT = Path(__file__).resolve().parents[2]

def texts(recognizer: Recognizer, prepared, rows, logits: np.ndarray) -> list[str]:
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    return [
        greedy_decode(probs[k], recognizer.charset, probs.shape[1], im.scale_x, im.original_width).text
        for k, im in enumerate(prepared[i] for i in rows)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=0, help="images per set (0: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    recognizer = Recognizer(device="cpu", precision="fp32", threads=2)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = OnnxNetwork(run_export(ExportConfig("english_g2", Path(tmp) / "fp32.onnx")), threads=2)
        int8 = OnnxNetwork(run_export(ExportConfig("english_g2", Path(tmp) / "int8.onnx", int8=True)), threads=2)
    print("| set | n | ORT fp32 texts = PyTorch | max abs logit diff | PyTorch fp32 loose | ORT fp32 loose "
          "| ORT int8 loose |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        try:
            dataset = open_dataset(folder)
        except ValueError:
            continue  # not a set of cropped lines (e.g. whole receipts)
        samples = list(islice(iter(dataset), args.limit or None))
        prepared = recognizer.prepare_many([s.image for s in samples])
        labels = [s.label for s in samples]
        read = {"torch": [""] * len(samples), "fp32": [""] * len(samples), "int8": [""] * len(samples)}
        worst = 0.0
        for rows, batch in recognizer.input_batches(prepared):
            with torch.inference_mode():
                ref = recognizer.network(batch).numpy()
            out = fp32(batch.numpy())
            worst = max(worst, float(np.abs(out - ref).max()))
            for name, logits in (("torch", ref), ("fp32", out), ("int8", int8(batch.numpy()))):
                for i, text in zip(rows, texts(recognizer, prepared, rows, logits)):
                    read[name][i] = text
        same = sum(a == b for a, b in zip(read["torch"], read["fp32"]))
        acc = {k: np.mean([loose(t) == loose(lab) for t, lab in zip(v, labels)]) for k, v in read.items()}
        print(f"| {folder.name} | {len(samples)} | {same}/{len(samples)} | {worst:.1e} | {acc['torch']:.3f} | "
              f"{acc['fp32']:.3f} | {acc['int8']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
