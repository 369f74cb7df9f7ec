"""Our PP-OCRv6 module against ONNX Runtime on every crop of every shared set, on the batches we serve.

    python scripts/bench/model_parity.py [--data ../shared/data] [--sets NAME ...]

For each set: crops, the largest |probability| difference from ONNX Runtime (fp32, same input tensors)
for our module as loaded and as the recogniser runs it (channels-last), and how many greedy texts differ.
For scale, the runtime's own spread: ONNX Runtime with its graph optimisations off against on (the same
file, the same inputs; only the order and fusion of float operations change).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from crnn import Recognizer
from crnn.decode import greedy_decode
from crnn.specs import MODEL_SPECS
from crnn.weights import load_model
from ocr.data.datasets import DatasetError, open_dataset

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", metavar="NAME")
    parser.add_argument("--model", default="ppocrv6_small", choices=[n for n, s in MODEL_SPECS.items()
                                                                     if s.weights_format == "onnx"])
    args = parser.parse_args()
    import onnxruntime as ort

    path = str(MODEL_SPECS[args.model].weights_file())
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    unoptimised = ort.InferenceSession(path, plain, providers=["CPUExecutionProvider"])
    module = load_model(args.model).network.eval()
    served = Recognizer(args.model, device="cpu", precision="fp32")
    print("| set | crops | max abs diff, module | max abs diff, served (channels-last) | texts differing "
          "| ONNX Runtime unoptimised vs optimised |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir() and (not args.sets or p.name in args.sets)):
        try:
            dataset = open_dataset(folder)
        except DatasetError:
            continue
        prepared = [served.prepare(s.image) for s in dataset]
        worst = worst_served = spread = 0.0
        differ = 0
        for _, batch in served.input_batches(prepared):
            theirs = session.run(None, {"x": batch.numpy()})[0]
            spread = max(spread, float(np.abs(unoptimised.run(None, {"x": batch.numpy()})[0] - theirs).max()))
            with torch.inference_mode():
                ours = torch.softmax(module(batch), -1).numpy()
                run = torch.softmax(served.network(batch.contiguous(memory_format=torch.channels_last)), -1).numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
            worst_served = max(worst_served, float(np.abs(run - theirs).max()))
            differ += sum(greedy_decode(a, served.charset).text != greedy_decode(b, served.charset).text
                          for a, b in zip(ours, theirs))
        print(f"| {folder.name} | {len(prepared)} | {worst:.1e} | {worst_served:.1e} | {differ} | {spread:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
