"""`ocr eval`'s reading loop against RapidOCR's recogniser (same PP-OCRv6 weights) on the same crops, side by side.

    python scripts/bench/bench_rapidocr.py [DATASET] [--limit 600] [--precisions fp32 bf16] [--batch-sizes 32]
                                           [--repeats 3]

Both sides start from the encoded image bytes in memory, so decoding is on the clock for both. RapidOCR 3.10:
recognition only (``use_det=False, use_cls=False``), one crop a call as its API takes them, ONNX Runtime with
its default threads. Ours: ``ocr.eval.lines.evaluate`` with the default model, one recogniser per precision with
``--threads`` torch threads. Rounds interleave the engines so machine noise hits all of them alike. Prints
lines/s (median and every round), loose accuracy and our speed over RapidOCR's.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

from side_by_side import print_race, race  # this folder: python puts it on the path

from crnn import Recognizer
from ocr.data.datasets import open_dataset

DEFAULT_SET = Path(__file__).resolve().parents[3] / "shared" / "data" / "iiit5k_test_even_scenes"


def rapidocr_round(engine, images: list[bytes]) -> tuple[float, list[str]]:
    """Read every image with RapidOCR, one call each; (seconds, texts)."""
    start = time.perf_counter()
    texts = []
    for data in images:
        out = engine(data, use_det=False, use_cls=False, use_rec=True)
        texts.append(out.txts[0] if out.txts else "")
    return time.perf_counter() - start, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--model", default=None, help="our model (default: the default model)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32],
                        help="our batch sizes (each caps a batch at that many lines and 256 columns a line)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})
    dataset = open_dataset(args.dataset).cached(args.limit)  # file reads off everyone's clock
    samples = list(dataset)
    images = [s.image for s in samples]
    labels = [s.label for s in samples]
    kwargs = {"model": args.model} if args.model else {}
    recognizers = {f"{p} batch {b}": Recognizer(precision=p, device="cpu", threads=args.threads, batch_size=b,
                                                **kwargs) for p in args.precisions for b in args.batch_sizes}
    rapidocr_round(engine, images[:8])  # sessions built and warm outside the clock
    rates, loose = race(partial(rapidocr_round, engine, images), recognizers, dataset, labels, args.repeats)
    model = next(iter(recognizers.values())).model.name
    print(f"{len(images)} crops of {args.dataset.name}; ours: {model}, {args.threads} threads; "
          f"medians of {args.repeats} rounds")
    print_race(rates, loose, "RapidOCR 3.10 rec", "RapidOCR")

if __name__ == "__main__":
    main()
