"""``ocr eval``: score a model on a labelled set of lines (or, with ``--detect``, of pages) and print the figures."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from crnn.weights import write_atomically
from ocr.config import EvalConfig
from ocr.data.datasets import open_dataset
from ocr.data.page_sets import open_page_set
from ocr.eval.lines import Prediction, evaluate, summarise
from ocr.eval.page_metrics import IOU_THRESHOLD
from ocr.eval.pages import evaluate_pages
from ocr.output.pages import line_record


def write_predictions(path: Path, predictions: list[Prediction]) -> None:
    """Every line's reading beside its label, as TSV (written atomically)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["name", "label", "text", "confidence", "error"])
    for p in predictions:
        writer.writerow([p.name, p.label, p.text, f"{p.confidence:.4f}", p.error])
    write_atomically(path, buffer.getvalue().encode("utf-8"))


def run_eval(config: EvalConfig) -> int:
    """Read the set, print accuracy with 95% intervals, calibration and speed (or one JSON object)."""
    if config.detect.detect:
        return run_eval_pages(config)
    dataset = open_dataset(config.dataset)
    recognizer = config.model.load()
    result = evaluate(recognizer, dataset, config.allow, config.limit, progress=sys.stderr.isatty(),
                      constraint=config.decode.build(recognizer), min_confidence=config.decode.min_confidence)
    if config.out:
        write_predictions(config.out, result.predictions)
    s, summary = result.scores, summarise(result)
    ci = summary.intervals
    if config.json:
        record = {**s.as_dict(), "lines_per_s": round(result.lines_per_s, 2), "unreadable": summary.unreadable,
                  "rejected": summary.rejected,
                  "model": recognizer.model.name, "precision": recognizer.precision, "runtime": recognizer.runtime,
                  **{f"{k}_ci95": [round(v.low, 4), round(v.high, 4)] for k, v in ci.items()},
                  "mean_confidence": round(summary.mean_confidence, 4),
                  "ece": round(summary.ece, 4),
                  "ece_loose": round(summary.ece_loose, 4),
                  "risk_coverage": [{k: round(v, 4) for k, v in row.items()} for row in summary.risk_coverage]}
        print(json.dumps(record))
        return 0
    failed, rejected = summary.unreadable, summary.rejected
    print(f"dataset   {config.dataset} ({dataset.kind})")
    print(f"model     {recognizer.model.name} on {recognizer.device}, {recognizer.precision}, {recognizer.runtime}")
    print(f"n         {s.n}" + (f" ({failed} unreadable, counted as wrong)" if failed else "")
          + (f" ({rejected} rejected below --min-confidence, counted as wrong)" if rejected else ""))
    print(f"exact     {s.exact:.4f}  (95% CI {ci['exact'].low:.4f}-{ci['exact'].high:.4f})")
    print(f"loose     {s.loose:.4f}  (95% CI {ci['loose'].low:.4f}-{ci['loose'].high:.4f})")
    print(f"cer       {s.cer:.4f}  (95% CI {ci['cer'].low:.4f}-{ci['cer'].high:.4f})")
    print(f"ece       {summary.ece:.4f}  (exact; loose {summary.ece_loose:.4f}; mean confidence "
          f"{summary.mean_confidence:.4f})")
    print(f"lines/s   {result.lines_per_s:.1f}")
    return 0


def run_eval_pages(config: EvalConfig) -> int:
    """Find and read the lines of every page; print word and detection precision, recall and F1."""
    pages = open_page_set(config.dataset)
    if config.allow or config.decode.pattern or config.decode.lexicon or config.decode.beam:
        raise ValueError("ocr eval --detect scores plain readings; drop --allow, --pattern, --lexicon and --beam")
    reader = config.detect.page_reader(config.model.load(), config.model)
    result = evaluate_pages(reader, pages, config.limit, progress=sys.stderr.isatty())
    if config.out:
        rows = [json.dumps({"image": name, "lines": [line_record(line, char_details=False) for line in lines]},
                           ensure_ascii=False) for name, lines in result.lines.items()]
        write_atomically(config.out, ("\n".join(rows) + "\n").encode("utf-8"))
    record = result.as_dict()
    if config.json:
        print(json.dumps({**record, "model": reader.recognizer.model.name, "detector": reader.detector.spec.name,
                          "precision": reader.recognizer.precision, "detector_precision": reader.detector.precision,
                          "runtime": reader.recognizer.runtime, "detector_runtime": reader.detector.runtime}))
        return 0
    s = result.scores
    print(f"dataset    {config.dataset} (pages with line boxes)")
    print(f"models     {reader.detector.spec.name} ({reader.detector.precision}, {reader.detector.runtime}) + "
          f"{reader.recognizer.model.name} ({reader.recognizer.precision}, {reader.recognizer.runtime}) on "
          f"{reader.recognizer.device}")
    unreadable = f" ({len(result.errors)} unreadable, read as empty)" if result.errors else ""
    print(f"pages      {result.pages}{unreadable}")
    print(f"words      P {s['word_precision']:.4f}  R {s['word_recall']:.4f}  F1 {s['word_f1']:.4f}  "
          f"(case-insensitive; cased F1 {s['word_f1_cased']:.4f})")
    print(f"detection  P {s['det_precision']:.4f}  R {s['det_recall']:.4f}  F1 {s['det_f1']:.4f}  "
          f"(IoU >= {IOU_THRESHOLD})")
    print(f"s/page     {result.seconds_per_image:.2f}")
    return 0
