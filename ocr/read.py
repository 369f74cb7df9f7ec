"""``ocr read``: recognise image files and folders of images."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from crnn import InvalidImageError, Recognizer
from ocr.config import ReadConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm"}


def expand_inputs(inputs: tuple[Path, ...]) -> Iterator[Path]:
    """Files as given; folders as their image files (recursively, sorted)."""
    for path in inputs:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            yield path


def format_reading(image: str, text: str, confidence: float, as_json: bool) -> str:
    """One output line: ``image<TAB>text<TAB>confidence``, or a JSON object with those keys."""
    if as_json:
        return json.dumps({"image": image, "text": text, "confidence": round(confidence, 4)}, ensure_ascii=False)
    return f"{image}\t{text}\t{confidence:.4f}"


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
    results = dict(zip(ok_paths, recognizer.recognize_prepared(prepared, config.allow)))
    failed = dict(failures)
    for path in paths:
        if path in failed:
            reason = failed[path].strerror if isinstance(failed[path], OSError) else str(failed[path])
            if config.json:
                print(json.dumps({"image": str(path), "error": reason}), file=out)
            print(f"error: {path}: {reason}", file=err)
            continue
        result = results[path]
        print(format_reading(str(path), result.text, result.confidence, config.json), file=out)
    return 1 if failures else 0
