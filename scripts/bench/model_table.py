"""Every bundled recogniser on every shared set of crops, beside RapidOCR's own pipeline and Tesseract.

    python scripts/bench/model_table.py [--data ../shared/data] [--sets NAME ...] [--rapidocr-cache DIR]

Rows: this project with each registered model (fp32, the shipped defaults), RapidOCR 3.10's
recognition-only pipeline with the same PP-OCRv6 small weights (one crop a call, as a new user calls
it; needs ``pip install rapidocr``), and Tesseract 5 from ``../shared/reference/tesseract/<set>.tsv``.
Cells are exact / loose / CER; MNIST is read with the digits allowlist (RapidOCR's readings are
scored with every non-digit removed). The last column counts the lines where our PP-OCRv6 reading
and RapidOCR's differ.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from crnn import Recognizer
from crnn.preprocess import to_pixels
from crnn.specs import MODEL_SPECS
from ocr.data.datasets import DatasetError, open_dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import Scores, score

ROOT = Path(__file__).resolve().parents[2]
DIGITS = "0123456789"


def rapidocr_readings(dataset, cache: Path | None) -> list[str]:
    """RapidOCR's recognition-only readings of every sample, one crop a call (cached per set if asked)."""
    cached = cache / f"{dataset.root.name}.json" if cache else None
    if cached and cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error"})
    texts = []
    for sample, where in zip(dataset, dataset.locations()):
        if where.source == "file":  # the file itself, decoded by RapidOCR as a user's call would
            image = where.path
        else:  # arrays (MNIST), in the BGR order RapidOCR takes them
            image = cv2.cvtColor(to_pixels(sample.image, 3), cv2.COLOR_RGB2BGR)
        out = engine(image, use_det=False, use_cls=False, use_rec=True)
        texts.append(out.txts[0] if out.txts else "")
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return texts


def tesseract_readings(dataset, reference: Path) -> list[str] | None:
    path = reference / f"{dataset.root.name}.tsv"
    if not path.is_file():
        return None
    by_name = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = line.split("\t")
        by_name[cells[0]] = cells[1] if len(cells) > 1 else ""
    names = [s.name for s in dataset]
    keys = [n if n in by_name else f"images/{n}" for n in names]
    return [by_name.get(k, "") for k in keys]


def cell(s: Scores) -> str:
    return f"{s.exact:.3f} / {s.loose:.3f} / {s.cer:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--tesseract", type=Path, default=ROOT.parent / "shared" / "reference" / "tesseract")
    parser.add_argument("--sets", nargs="+", metavar="NAME", help="only these sets (default: every set of lines)")
    parser.add_argument("--models", nargs="+", default=list(MODEL_SPECS))
    parser.add_argument("--rapidocr-cache", type=Path, help="keep RapidOCR's readings here and reuse them")
    parser.add_argument("--no-rapidocr", action="store_true")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args()
    recognizers = {m: Recognizer(m, precision=args.precision) for m in args.models}
    columns = [*args.models, *([] if args.no_rapidocr else ["RapidOCR 3.10"]), "Tesseract 5"]
    print("exact / loose / CER\n")
    print("| set | n | " + " | ".join(columns) + " | ours vs RapidOCR: lines read differently |")
    print("|" + " --- |" * (len(columns) + 3))
    rows = []
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir() and (not args.sets or p.name in args.sets)):
        try:
            dataset = open_dataset(folder)
        except DatasetError:
            continue  # not a set of cropped lines (whole receipts)
        allow = DIGITS if dataset.kind == "mnist-idx" else None
        labels = [s.label for s in dataset]
        texts: dict[str, list[str] | None] = {}
        for name, recognizer in recognizers.items():
            texts[name] = [p.text for p in evaluate(recognizer, dataset, allow, progress=False).predictions]
        if not args.no_rapidocr:
            theirs = rapidocr_readings(dataset, args.rapidocr_cache)
            texts["RapidOCR 3.10"] = ["".join(c for c in t if c in DIGITS) for t in theirs] if allow else theirs
        texts["Tesseract 5"] = tesseract_readings(dataset, args.tesseract)
        scores = {k: score(v, labels) for k, v in texts.items() if v is not None}
        ours = texts.get("ppocrv6_small")
        differ = "-"
        if ours is not None and texts.get("RapidOCR 3.10") is not None:
            differ = str(int(np.sum([a != b for a, b in zip(ours, texts["RapidOCR 3.10"])])))
        cells = [cell(scores[c]) if c in scores else "-" for c in columns]
        print(f"| {folder.name} | {len(dataset)} | " + " | ".join(cells) + f" | {differ} |", flush=True)
        rows.append({"set": folder.name, "n": len(dataset), "differ": differ,
                     **{c: vars(scores[c]) for c in columns if c in scores}})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
