"""``ocr serve --collect DIR``: keep the crops the service read with low confidence, as draft labels for review.

Opt-in and off by default. For each cropped line (not whole pages) read below ``--collect-below``, it stores
in DIR: the image bytes exactly as the client sent them (``collected/<first 16 hex of their SHA-256>.<format>``;
the same image sent twice is kept once) and a draft row in DIR's review state (``ocr-labels.jsonl``: the model's
reading, its confidence and character spans, the model's name, the time, ``source: ocr serve``). Nothing else of
the request is kept: no client address, token, id or metadata. At most ``--collect-max`` images are kept; then
collection stops, with one warning in the log. ``ocr label DIR --review`` reviews them, least sure first.

Saving runs on its own thread, after the answer is built: a slow or full disk never delays or fails a request
(errors are logged).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from crnn.decode import Result
from crnn.weights import write_atomically
from ocr.label.drafts import check_mode
from ocr.label.store import LabelRow, LabelStore

log = logging.getLogger(__name__)
COLLECTED_DIR = "collected"
#: Image formats PIL names, as file suffixes ``ocr label`` reads.
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "GIF": ".gif",
           "PPM": ".ppm"}


@dataclass(frozen=True)
class CollectOptions:
    """Where to keep low-confidence crops, below which confidence, and how many at most."""

    folder: Path
    below: float = 0.5
    max_images: int = 10_000


class Collector:
    """Saves low-confidence crops and their readings into a label folder, off the event loop."""

    def __init__(self, options: CollectOptions) -> None:
        self.options = options
        self.store = LabelStore(options.folder)
        check_mode(self.store, detect=False)  # a folder of pages cannot take crops
        self.kept = sum(row.source == "ocr serve" for row in self.store.rows().values())
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collect")
        self._warned = False

    def offer(self, model: str, images: Sequence[bytes], readings: Sequence[object]) -> None:
        """Queue the crops among ``images`` whose reading (a ``Result``; pages are ignored) is below the limit."""
        chosen = [(data, r) for data, r in zip(images, readings)
                  if isinstance(r, Result) and r.confidence < self.options.below]
        if chosen:
            self._executor.submit(self._save, model, chosen)

    def _save(self, model: str, chosen: list[tuple[bytes, Result]]) -> None:
        try:
            rows = []
            for data, result in chosen:
                if self.kept + len(rows) >= self.options.max_images:
                    if not self._warned:
                        log.warning("--collect: %s holds %d collected images, the limit: collecting stops",
                                    self.options.folder, self.options.max_images)
                        self._warned = True
                    break
                name = self._write(data)
                chars = [[c.text, c.x_start, c.x_end] for c in result.chars]
                rows.append(LabelRow(name, result.text, "draft", reading=result.text,
                                     confidence=round(result.confidence, 4), chars=chars, model=model,
                                     source="ocr serve"))
            self.kept += self.store.put_drafts(rows, only_new=True)  # an image sent again is kept once
        except Exception:  # collection must never take the service down
            log.exception("--collect: could not save %d crops into %s", len(chosen), self.options.folder)

    def _write(self, data: bytes) -> str:
        try:
            kind = Image.open(io.BytesIO(data)).format or ""
        except Exception:
            kind = ""
        name = f"{COLLECTED_DIR}/{hashlib.sha256(data).hexdigest()[:16]}{_SUFFIX.get(kind, '.png')}"
        path = self.options.folder / name
        if not path.exists():
            write_atomically(path, data)
        return name

    def close(self) -> None:
        """Finish saving what was queued."""
        self._executor.shutdown(wait=True)
