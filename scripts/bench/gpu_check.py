"""On a GPU: CUDA PyTorch (fp32, fp16, bf16) and ONNX Runtime's CUDA provider against the CPU's fp32 texts, lines/s
in-process, then through gRPC. Runs as it is wherever a GPU is present; prints why and exits 0 where none is.

    python scripts/bench/gpu_check.py [DATASET] [--limit 600] [--repeats 3] [--no-grpc]

In-process rows time ``Recognizer.recognize`` over the crops (decoding included), medians of ``--repeats``; "same"
counts texts equal to the CPU fp32 reading of the same crop. ONNX Runtime's row runs the graph ``crnn.graph``
exports (up to the CTC head) on ``CUDAExecutionProvider`` (needs ``onnxruntime-gpu``), the head in PyTorch on the
CPU. The gRPC rows come from ``bench_server.py --device cuda`` at each precision (32 clients, 8 images a call).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from crnn import Recognizer
from crnn.graph import cached_graph, recognizer_graph
from crnn.runtime_onnxruntime import OnnxRuntimeEngine
from ocr.data.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"


def timed(recognizer: Recognizer, crops: list[bytes], repeats: int) -> tuple[float, list[str]]:
    recognizer.recognize(crops[:64])  # warm-up: kernels chosen, memory allocated
    rates, texts = [], []
    for _ in range(repeats):
        if recognizer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        texts = [r.text for r in recognizer.recognize(crops)]
        rates.append(len(crops) / (time.perf_counter() - start))
    return statistics.median(rates), texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_SET if DEFAULT_SET.is_dir() else
                        ROOT / "examples")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-grpc", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check (this script runs as it is on a machine with one)")
        return
    crops = [s.image for s in open_dataset(args.dataset).cached(args.limit)]
    print(f"{torch.cuda.get_device_name(0)}; {len(crops)} crops of {args.dataset.name}; medians of {args.repeats}")
    cpu = Recognizer(device="cpu", precision="fp32")
    cpu_rate, reference = timed(cpu, crops, 1)
    print(f"| engine | lines/s | same text as CPU fp32 (of {len(crops)}) |\n| --- | ---: | ---: |")
    print(f"| CPU fp32 ({cpu.runtime}) | {cpu_rate:.0f} | {len(crops)} |")
    for precision in ("fp32", "fp16", "bf16"):
        rate, texts = timed(Recognizer(device="cuda", precision=precision), crops, args.repeats)  # type: ignore[arg-type]
        print(f"| CUDA PyTorch {precision} | {rate:.0f} | {sum(a == b for a, b in zip(texts, reference))} |")
    try:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ImportError("onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu")
        onnx = Recognizer(device="cpu", precision="fp32", runtime="torch")
        channels = onnx.model.normalization.channels
        onnx.engine = OnnxRuntimeEngine(cached_graph(recognizer_graph(onnx.model.network, channels, onnx.input_height)),
                                        providers=("CUDAExecutionProvider",))
        rate, texts = timed(onnx, crops, args.repeats)
        print(f"| ONNX Runtime CUDA fp32 (head on the CPU) | {rate:.0f} | "
              f"{sum(a == b for a, b in zip(texts, reference))} |")
    except ImportError as exc:
        print(f"ONNX Runtime CUDA: skipped ({exc})")
    if not args.no_grpc:
        for precision in ("fp32", "fp16"):
            print(f"\ngRPC, CUDA PyTorch {precision}:", flush=True)
            subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "bench_server.py"), str(args.dataset),
                            "--crops", str(min(args.limit, 512)), "--device", "cuda", "--precision", precision,
                            "--runtime", "torch", "--concurrency", "32", "--images-per-request", "8",
                            "--protocols", "grpc", "--repeats", "1", "--lone-calls", "20"], check=False)


if __name__ == "__main__":
    main()
