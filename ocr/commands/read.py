"""``ocr read``: recognise image files and folders of images."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from crnn import InvalidImageError, Recognizer
from crnn.preprocess import to_gray
from ocr.config import ReadConfig
from ocr.data.inputs import expand_inputs
from ocr.output.lines import format_reading
from ocr.output.pages import draw_lines, format_page, looks_like_page
from textdet import PageReader


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
    _warn_if_pages(ok_paths, prepared, err)
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


def _warn_if_pages(paths: list[Path], prepared: list, err: TextIO) -> None:
    for path, image in zip(paths, prepared):
        if looks_like_page(image.original_width, image.original_height):
            print(f"warning: {path} is {image.original_width}x{image.original_height}, shaped like a page or photo, "
                  "not a cropped line; its reading is likely garbage. Use --detect to find and read its lines.",
                  file=err)


def _draw_target(draw: Path, path: Path, several: bool) -> Path:
    return draw / f"{path.stem}.png" if several else draw


def run_read_pages(config: ReadConfig, reader: PageReader, out: TextIO | None = None,
                   err: TextIO | None = None) -> int:
    """``ocr read --detect``: find and read the lines of every image; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    paths = list(expand_inputs(config.inputs))
    if not paths:
        raise FileNotFoundError("no images found in " + ", ".join(map(str, config.inputs)))
    several = len(paths) > 1
    if config.draw is not None and several and config.draw.exists() and not config.draw.is_dir():
        raise ValueError(f"--draw {config.draw}: with several images, --draw must be a folder")
    constraint = config.decode.build(reader.recognizer)
    failures = 0
    for path in paths:
        try:
            gray = to_gray(path.read_bytes())
        except (OSError, InvalidImageError) as exc:
            failures += 1
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            if config.json:
                print(json.dumps({"image": str(path), "error": reason}), file=out)
            print(f"error: {path}: {reason}", file=err)
            continue
        lines = reader.read([gray], config.allow, constraint, config.decode.min_confidence)[0]
        print(format_page(str(path), lines, config.json), file=out, flush=True)
        if config.draw is not None:
            target = draw_lines(gray, lines, _draw_target(config.draw, path, several))
            print(f"drew {len(lines)} lines over {path} into {target}", file=err)
    return 1 if failures else 0
