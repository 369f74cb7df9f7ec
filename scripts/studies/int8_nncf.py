"""Would NNCF's post-training int8 make PP-OCRv6 small fast enough, and keep its readings? A probe on OpenVINO.

    pip install nncf            # not a dependency of the project: this study only
    python scripts/studies/int8_nncf.py [--calibration 256] [--sets iiit5k_test_even_scenes ...]

The graph the CPU runtimes run (``crnn.graph``: the recogniser up to its CTC head) is quantised by NNCF with
ranges from IIIT5K *training* crops laid out as the recogniser batches them, in each variant below; then

* speed: the graph alone on 32 real crops padded to 256 columns, OpenVINO with 2 throughput streams, medians of 9
  calls after 3 warm-up calls, fp32 and each variant measured in turn;
* readings: every line of each set read by the shipped recogniser (fp32, OpenVINO) and by the same recogniser with
  its engine swapped for the quantised graph, paired (loose): lines only fp32 reads right / only int8 does.

Variants: NNCF's default (performance) preset; the mixed preset (asymmetric activations); and depthwise
convolutions plus the encoder's matrix products left in fp32.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from crnn import Recognizer
from crnn.graph import cached_graph, recognizer_graph
from crnn.runtime_openvino import OpenVinoEngine
from ocr.data.datasets import open_dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import loose

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SETS = ["iiit5k_test_even_scenes", "openalpr_us_plates_part1", "sroie_receipt_lines_part1", "mnist_t10k_first5000"]


def variants(nncf) -> dict[str, dict]:
    """NNCF ``quantize`` arguments per variant."""
    return {
        "int8 (performance preset)": {},
        "int8 (mixed preset)": {"preset": nncf.QuantizationPreset.MIXED},
        "int8, depthwise and encoder in fp32": {
            "ignored_scope": nncf.IgnoredScope(types=["GroupConvolution", "MatMul"])},
    }


def graph_ms_per_line(core, model, batch: np.ndarray) -> float:
    """Median milliseconds a line for the graph alone, split across OpenVINO's throughput streams."""
    import openvino as ov

    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT",
                                                 "INFERENCE_NUM_THREADS": 2})
    streams = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, streams)

    def run() -> None:
        for part in np.array_split(batch, streams):
            queue.start_async({0: part})
        queue.wait_all()

    for _ in range(3):
        run()
    times = []
    for _ in range(9):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000 / len(batch)


def read_right(reader: Recognizer, dataset, allow: str | None) -> list[bool]:
    """Whether each line of ``dataset`` reads right (loose)."""
    return [loose(p.text) == loose(p.label) for p in evaluate(reader, dataset, allow, progress=False).predictions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=256, help="IIIT5K training crops for the ranges")
    parser.add_argument("--sets", nargs="+", default=SETS)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise SystemExit(f"this study needs nncf and openvino ({exc}): pip install nncf openvino") from exc

    reference = Recognizer("ppocrv6_small", device="cpu", precision="fp32", runtime="openvino", threads=2)
    network = reference.model.network
    graph = cached_graph(recognizer_graph(network, reference.model.normalization.channels, reference.input_height))
    train = open_dataset(args.data / "iiit5k_train_even_scenes")
    prepared = [reference.prepare(sample.image) for _, sample in zip(range(args.calibration), train)]
    batches = [batch.numpy() for _, batch in reference.input_batches(prepared)]
    timing = np.concatenate([b for b in batches if b.shape[-1] == 256])[:32]

    core = ov.Core()
    model = core.read_model(str(graph))
    print(f"graph ms a line (32 crops at 256 columns): fp32 {graph_ms_per_line(core, model, timing):.2f}", flush=True)
    readers: dict[str, Recognizer] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, options in variants(nncf).items():
            quantised = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches), **options)
            print(f"graph ms a line: {name} {graph_ms_per_line(core, quantised, timing):.2f}", flush=True)
            path = Path(folder) / f"{len(readers)}.xml"
            ov.save_model(quantised, str(path))
            reader = Recognizer("ppocrv6_small", device="cpu", precision="fp32", runtime="openvino", threads=2)
            reader.engine = OpenVinoEngine(path, 2)
            readers[name] = reader
        print("\n| set | lines | fp32 loose | " + " | ".join(f"{n} (only fp32 / only int8)" for n in readers) + " |")
        print("| --- | ---: | ---: | " + " | ".join("---:" for _ in readers) + " |")
        for name in args.sets:
            dataset = open_dataset(args.data / name)
            allow = "0123456789" if dataset.kind == "mnist-idx" else None
            base = read_right(reference, dataset, allow)
            cells = []
            for reader in readers.values():
                other = read_right(reader, dataset, allow)
                only_base = sum(a and not b for a, b in zip(base, other))
                only_other = sum(b and not a for a, b in zip(base, other))
                cells.append(f"{sum(other) / len(other):.3f} ({only_base} / {only_other})")
            print(f"| {name} | {len(base)} | {sum(base) / len(base):.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
