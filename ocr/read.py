"""``ocr read``: recognise image files and folders of images."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from crnn import InvalidImageError, Recognizer
from crnn.decode import Result
from ocr.config import ReadConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm"}


def expand_inputs(inputs: tuple[Path, ...]) -> Iterator[Path]:
    """Files as given; folders as their image files (recursively, sorted)."""
    for path in inputs:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            yield path


def format_reading(image: str, result: Result, as_json: bool) -> str:
    """One output line: ``image<TAB>text<TAB>confidence``, or a JSON object with those keys.

    With a constraint, JSON adds the ``unconstrained`` (greedy) text and confidence; a rejected reading
    (below ``--min-confidence``) has no text and is marked ``rejected``.
    """
    if as_json:
        record = {"image": image, "text": result.text, "confidence": round(result.confidence, 4)}
        if result.rejected:
            record["rejected"] = True
        if result.unconstrained is not None:
            record["unconstrained"] = {"text": result.unconstrained.text,
                                       "confidence": round(result.unconstrained.confidence, 4)}
        return json.dumps(record, ensure_ascii=False)
    return f"{image}\t{result.text}\t{result.confidence:.4f}" + ("\trejected" if result.rejected else "")


def run_read(config: ReadConfig, recognizer: Recognizer, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print one line per image; returns the exit status (1 if any image failed)."""
    out, err = out or sys.stdout, err or sys.stderr
    paths = list(expand_inputs(config.inputs))
    if not paths:
        raise FileNotFoundError("no images found in " + ", ".join(map(str, config.inputs)))
    prepared, ok_paths, failures = [], [], []
    for path in paths:
        try:
            prepared.append(recognizer.prepare(path.read_bytes()))
            ok_paths.append(path)
        except (OSError, InvalidImageError) as exc:
            failures.append((path, exc))
    constraint = config.decode.build(recognizer)
    results = dict(zip(ok_paths, recognizer.recognize_prepared(prepared, config.allow, constraint,
                                                               config.decode.min_confidence)))
    failed = dict(failures)
    for path in paths:
        if path in failed:
            reason = failed[path].strerror if isinstance(failed[path], OSError) else str(failed[path])
            if config.json:
                print(json.dumps({"image": str(path), "error": reason}), file=out)
            print(f"error: {path}: {reason}", file=err)
            continue
        result = results[path]
        print(format_reading(str(path), result, config.json), file=out)
    return 1 if failures else 0
