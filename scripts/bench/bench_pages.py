"""Whole pages: our detector + recogniser against RapidOCR, Tesseract and EasyOCR ``readtext``, side by side, page
by page.

    python scripts/bench/bench_pages.py [PAGE_SET] [--limit N] [--detector NAME] [--half a|b]
                                  [--easyocr-python /path/to/venv/bin/python]

For comparison only; only RapidOCR (whose wheel ships the PP-OCRv6 weights) is installed with the project:

* RapidOCR 3.10: its own pipeline with its defaults (PP-OCRv6 small detector, line classifier, recogniser;
  ONNX Runtime), ``RapidOCR()(path)``.

* faster-paddle 1.0.4 (``pip install faster-paddle``: Rust + ONNX Runtime, PP-OCRv6 tiny and small in its wheel),
  ``OcrEngine(model_size, threads=2)`` with its defaults, ``engine.ocr(bytes)``; its boxes are axis-aligned
  rectangles (``bounds``), each with its text. ``--faster-paddle small tiny`` (default: both, where installed).
* Tesseract: ``pip install tesserocr`` and ``apt-get install tesseract-ocr``; whole page, PSM 3 (automatic
  layout), English; its text lines (``RIL.TEXTLINE``) are the boxes.
* EasyOCR: install it in a *separate* virtual environment and pass its Python with ``--easyocr-python``;
  ``--easyocr-models`` is a folder holding ``craft_mlt_25k.pth`` and ``english_g2.pth`` (nothing is
  downloaded). ``readtext`` runs with its defaults, on the CPU, in a child process that reads one page per
  request, so the three engines take turns page by page and machine noise hits them alike.

Every engine starts from the image file on disk (decoding is on the clock) and is scored the same way
(``ocr.eval.page_metrics``: word P/R/F1 as in ICDAR 2019 SROIE task 2, detection P/R at IoU 0.5). Ours is split
into detection (find and cut the lines) and recognition (read them, darkened second reading, clean-ups).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from crnn import Recognizer
from crnn.preprocess import to_gray
from ocr.data.page_sets import Page, open_page_set
from ocr.eval.page_metrics import Tally
from textdet import DEFAULT_DETECTOR, DETECTOR_SPECS, Detector, PageReader

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "sroie_receipts_full_part1"
TESSDATA = [Path("/usr/share/tesseract-ocr/5/tessdata"), Path("/usr/share/tesseract-ocr/4.00/tessdata")]

# Runs in EasyOCR's own environment: one JSON request (an image path) per line in, one JSON answer out.
EASYOCR_CHILD = """
import json, sys, time
try:
    import tv_cpu_shim  # noqa: F401  (only where torchvision's compiled ops are missing)
except ImportError:
    pass
import easyocr
reader = easyocr.Reader(["en"], gpu=False, model_storage_directory=sys.argv[1], download_enabled=False,
                        verbose=False)
print(json.dumps({"ready": True}), flush=True)
for request in sys.stdin:
    path = json.loads(request)["path"]
    start = time.perf_counter()
    found = reader.readtext(path)
    seconds = time.perf_counter() - start
    lines = [{"box": [[float(x), float(y)] for x, y in box], "text": text} for box, text, _ in found]
    print(json.dumps({"seconds": seconds, "lines": lines}), flush=True)
"""


class Ours:
    def __init__(self, precision: str, detector: str, runtime: str) -> None:
        recognizer = Recognizer(precision=precision, runtime=runtime)  # type: ignore[arg-type]
        self.reader = PageReader(recognizer, Detector(detector, precision=precision,  # type: ignore[arg-type]
                                                      runtime=runtime))  # type: ignore[arg-type]
        self.name = f"ours ({detector} + {recognizer.model.name}, {recognizer.runtime})"
        recognizer.warmup()
        self.detect_s: list[float] = []
        self.read_s: list[float] = []

    def read(self, page: Page) -> tuple[float, list[np.ndarray], list[str]]:
        start = time.perf_counter()
        gray = to_gray(page.image_path.read_bytes())
        cuts = self.reader.cut(gray)
        cut_done = time.perf_counter()
        lines = self.reader.read_cuts(cuts, 1)[0]
        end = time.perf_counter()
        self.detect_s.append(cut_done - start)
        self.read_s.append(end - cut_done)
        return end - start, [np.array(line.box, np.float32) for line in lines], [line.text for line in lines]


class RapidOcr:
    name = "RapidOCR 3.10 defaults"

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "error"})

    def read(self, page: Page) -> tuple[float, list[np.ndarray], list[str]]:
        start = time.perf_counter()
        out = self.engine(str(page.image_path))
        seconds = time.perf_counter() - start
        if out.boxes is None or out.txts is None:
            return seconds, [], []
        return seconds, [np.array(box, np.float32) for box in out.boxes], list(out.txts)


class FasterPaddle:
    def __init__(self, size: str, threads: int) -> None:
        import faster_paddle

        self.name = f"faster-paddle {size}"
        self.engine = faster_paddle.OcrEngine(model_size=size, threads=threads)

    def read(self, page: Page) -> tuple[float, list[np.ndarray], list[str]]:
        start = time.perf_counter()
        out = self.engine.ocr(page.image_path.read_bytes())
        seconds = time.perf_counter() - start
        boxes, texts = [], []
        for _, line in sorted(out["bounds"].items()):
            (left, top), (right, bottom) = line["topLeftCoord"], line["bottomRightCoord"]
            boxes.append(np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32))
            texts.append(line["text"])
        return seconds, boxes, texts


class Tesseract:
    name = "Tesseract 5 (PSM 3)"

    def __init__(self) -> None:
        import tesserocr

        tessdata = next((p for p in TESSDATA if p.is_dir()), None)
        if tessdata is None:
            raise RuntimeError("no tessdata folder; apt-get install tesseract-ocr")
        self.tesserocr = tesserocr
        self.api = tesserocr.PyTessBaseAPI(path=str(tessdata), lang="eng", psm=tesserocr.PSM.AUTO)

    def read(self, page: Page) -> tuple[float, list[np.ndarray], list[str]]:
        from PIL import Image

        tr = self.tesserocr
        start = time.perf_counter()
        self.api.SetImage(Image.open(page.image_path))
        self.api.Recognize()
        boxes, texts = [], []
        for item in tr.iterate_level(self.api.GetIterator(), tr.RIL.TEXTLINE):
            text = (item.GetUTF8Text(tr.RIL.TEXTLINE) or "").strip()
            box = item.BoundingBox(tr.RIL.TEXTLINE)
            if text and box:
                left, top, right, bottom = box
                boxes.append(np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32))
                texts.append(text)
        return time.perf_counter() - start, boxes, texts


class EasyOcr:
    name = "EasyOCR readtext"

    def __init__(self, python: str, models: Path) -> None:
        self.child = subprocess.Popen([python, "-c", EASYOCR_CHILD, str(models)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        if not json.loads(self._line()).get("ready"):
            raise RuntimeError("EasyOCR child did not start")

    def _line(self) -> str:
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        if not line:
            raise RuntimeError("EasyOCR child exited; run its command by hand to see why")
        return line

    def read(self, page: Page) -> tuple[float, list[np.ndarray], list[str]]:
        assert self.child.stdin is not None
        self.child.stdin.write(json.dumps({"path": str(page.image_path.resolve())}) + "\n")
        self.child.stdin.flush()
        answer = json.loads(self._line())
        boxes = [np.array(line["box"], np.float32) for line in answer["lines"]]
        return answer["seconds"], boxes, [line["text"] for line in answer["lines"]]

    def close(self) -> None:
        if self.child.stdin:
            self.child.stdin.close()
        self.child.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", type=Path, nargs="?", default=DEFAULT_SET)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--runtime", default="auto", help="ours: auto, torch, onnxruntime or openvino")
    parser.add_argument("--threads", type=int, default=2, help="faster-paddle's threads (default: 2)")
    parser.add_argument("--faster-paddle", nargs="*", default=["small", "tiny"], choices=["small", "tiny"],
                        help="faster-paddle model sizes to race (default: small tiny; none: skip)")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTOR_SPECS))
    parser.add_argument("--half", choices=["a", "b"],
                        help="a: the first half of the pages (where defaults are chosen), b: the second (reported)")
    parser.add_argument("--no-rapidocr", action="store_true")
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--easyocr-python", help="the Python of a virtual environment with easyocr installed")
    parser.add_argument("--easyocr-models", type=Path, default=Path("/tmp/easyocr-models"),
                        help="folder with craft_mlt_25k.pth and english_g2.pth (default: /tmp/easyocr-models)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()

    pages = open_page_set(args.pages)
    middle = len(pages) // 2
    pages = {"a": pages[:middle], "b": pages[middle:], None: pages}[args.half][: args.limit]
    engines: list = [Ours(args.precision, args.detector, args.runtime)]
    for size in args.faster_paddle:
        try:
            engines.append(FasterPaddle(size, args.threads))
        except ImportError as exc:
            print(f"skipping faster-paddle: {exc}", file=sys.stderr)
    if not args.no_rapidocr:
        try:
            engines.append(RapidOcr())
        except ImportError as exc:
            print(f"skipping RapidOCR: {exc}", file=sys.stderr)
    if not args.no_tesseract:
        try:
            engines.append(Tesseract())
        except (ImportError, RuntimeError) as exc:
            print(f"skipping Tesseract: {exc}", file=sys.stderr)
    if args.easyocr_python:
        engines.append(EasyOcr(args.easyocr_python, args.easyocr_models))
    tallies = {e.name: Tally() for e in engines}
    seconds: dict[str, list[float]] = {e.name: [] for e in engines}
    for number, page in enumerate(pages, 1):
        for engine in engines:
            spent, boxes, texts = engine.read(page)
            seconds[engine.name].append(spent)
            tallies[engine.name].add_page(boxes, texts, [t.box for t in page.lines], [t.text for t in page.lines],
                                          [t.dont_care for t in page.lines])
        done = ", ".join(f"{e.name.split()[0]} {seconds[e.name][-1]:.1f}s" for e in engines)
        print(f"page {number}/{len(pages)} {page.name}: {done}", file=sys.stderr, flush=True)
    for engine in engines:
        if isinstance(engine, EasyOcr):
            engine.close()

    ours = engines[0]
    rows = []
    which = f" (half {args.half})" if args.half else ""
    print(f"\n{len(pages)} pages of {args.pages}{which}; time per page includes decoding; ratio = engine's total time "
          "over ours\n")
    print("| engine | word P | word R | word F1 | cased F1 | det P | det R | s/page (mean) | s/page (median) "
          "| time / ours |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for engine in engines:
        s = tallies[engine.name].summary()
        spent = seconds[engine.name]
        ratio = sum(spent) / sum(seconds[ours.name])
        rows.append({"engine": engine.name, **{k: round(v, 4) for k, v in s.items()},
                     "seconds_per_page": round(statistics.fmean(spent), 3),
                     "median_seconds_per_page": round(statistics.median(spent), 3), "time_over_ours": round(ratio, 2)})
        print(f"| {engine.name} | {s['word_precision']:.3f} | {s['word_recall']:.3f} | {s['word_f1']:.3f} | "
              f"{s['word_f1_cased']:.3f} | {s['det_precision']:.3f} | {s['det_recall']:.3f} | "
              f"{statistics.fmean(spent):.2f} | {statistics.median(spent):.2f} | {ratio:.2f}x |")
    detect, read = statistics.fmean(ours.detect_s), statistics.fmean(ours.read_s)
    print(f"\nours, per page: detection {detect:.2f} s ({detect / (detect + read):.0%}), recognition {read:.2f} s; "
          f"detector {ours.reader.detector.precision}, recogniser {ours.reader.recognizer.precision}")
    if args.json:
        args.json.write_text(json.dumps({"pages": len(pages), "rows": rows, "ours_detect_s": round(detect, 3),
                                         "ours_read_s": round(read, 3)}, indent=2))


if __name__ == "__main__":
    main()
