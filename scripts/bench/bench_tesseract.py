"""`ocr eval`'s reading loop against Tesseract (tesserocr) on the same crops, side by side, medians of rounds.

    pip install tesserocr && apt-get install tesseract-ocr     # for this comparison only; not a project dependency
    python scripts/bench/bench_tesseract.py [DATASET] [--limit 600] [--model NAME] [--precisions fp32] [--repeats 3]

Both sides start from the encoded image bytes in memory, so decoding is on
the clock for both. Tesseract: PSM 7 (a single line), English, one
``PyTessBaseAPI`` per thread, ``--threads`` threads (tesserocr releases the
GIL while it recognises). Ours: ``ocr.eval.lines.evaluate``, the loop behind
``ocr eval``, one recogniser per precision with ``--threads`` torch threads.
Rounds interleave the engines so machine noise hits all of them alike.
Prints lines/s, loose accuracy and our speed over Tesseract's.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from side_by_side import print_race, race  # this folder: python puts it on the path

from crnn import Recognizer
from ocr.data.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"
TESSDATA = [Path("/usr/share/tesseract-ocr/5/tessdata"), Path("/usr/share/tesseract-ocr/4.00/tessdata")]


def tesseract_round(images: list[bytes], threads: int, tessdata: Path) -> tuple[float, list[str]]:
    """Read every image with Tesseract on ``threads`` threads; (seconds, texts)."""
    import tesserocr
    from PIL import Image

    local = threading.local()
    apis = []

    def read(data: bytes) -> str:
        api = getattr(local, "api", None)
        if api is None:
            api = local.api = tesserocr.PyTessBaseAPI(path=str(tessdata), lang="eng", psm=tesserocr.PSM.SINGLE_LINE)
            apis.append(api)
        api.SetImage(Image.open(io.BytesIO(data)))
        return api.GetUTF8Text().strip()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, images[: 2 * threads]))  # create the APIs and load the model outside the clock
        start = time.perf_counter()
        texts = list(pool.map(read, images))
        seconds = time.perf_counter() - start
    for api in apis:
        api.End()
    return seconds, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--model", default=None, help="our model (default: the default model)")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], help="bf16, int8 (english_g2 only) too")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tessdata = next((p for p in TESSDATA if (p / "eng.traineddata").is_file()), None)
    if tessdata is None:
        sys.exit("no eng.traineddata: apt-get install tesseract-ocr")

    dataset = open_dataset(args.dataset).cached(args.limit)  # file reads off everyone's clock
    samples = list(dataset)
    images = [s.image for s in samples]
    labels = [s.label for s in samples]
    kwargs = {"model": args.model} if args.model else {}
    recognizers = {
        p: Recognizer(precision=p, device="cpu", threads=args.threads, batch_size=args.batch_size, **kwargs)
        for p in args.precisions
    }
    rates, loose = race(partial(tesseract_round, images, args.threads, tessdata), recognizers, dataset, labels,
                        args.repeats)
    model = next(iter(recognizers.values())).model.name
    print(f"{len(images)} crops of {args.dataset.name}; ours: {model}; {args.threads} threads each; "
          f"medians of {args.repeats} rounds")
    print_race(rates, loose, "tesserocr PSM 7", "Tesseract")

if __name__ == "__main__":
    main()
