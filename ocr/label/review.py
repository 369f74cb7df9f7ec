"""The review page of ``ocr label --review``: a local aiohttp server over one label folder.

``GET /`` is the page (static files under ``web/``, nothing from a CDN); ``GET /api/state`` lists the rows in
review order with the progress; ``GET /api/image?path=...`` sends one of the folder's images (only those the
review state lists; formats a browser cannot show are sent as PNG); ``POST /api/label`` with JSON
``{"image", "status", "text"}`` saves one decision before it answers. Every request re-reads the state, so two
pages on one folder see each other's decisions on reload and never overwrite the file wholesale.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from ocr.label.store import ADAPT_SUGGEST_AFTER, LabelRow, LabelStateError, LabelStore, review_order, summarize

WEB_ROOT = Path(__file__).parent / "web"
#: Image formats sent as they are; any other is converted to PNG first.
BROWSER_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'"
MAX_BODY = 1 << 20


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def row_json(row: LabelRow) -> dict[str, Any]:
    """What the page needs of one row."""
    return {"image": row.image, "text": row.text, "reading": row.reading, "confidence": row.confidence,
            "status": row.status, "chars": row.chars, "page": row.page}


class ReviewApp:
    """The review server of one folder."""

    def __init__(self, folder: Path) -> None:
        self.store = LabelStore(folder)
        if not self.store.exists():
            raise FileNotFoundError(f"{folder} has no review state yet: run `ocr label {folder}` first")
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._headers])
        self.app.add_routes([
            web.get("/", self.index),
            web.get("/api/state", self.state),
            web.get("/api/image", self.image),
            web.post("/api/label", self.label),
            web.static("/static", WEB_ROOT),
        ])
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def _headers(self, request: web.Request, handler):
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def adapt_command(self, labelled: int) -> str | None:
        """The ``ocr adapt`` command to run once enough labels are checked (None before)."""
        if labelled < ADAPT_SUGGEST_AFTER:
            return None
        return f"ocr adapt {shlex.quote(str(self.store.folder))}"

    def snapshot(self) -> dict[str, Any]:
        rows = self.store.rows()
        summary = summarize(rows.values())
        return {"folder": str(self.store.folder), "items": [row_json(r) for r in review_order(rows.values())],
                "summary": summary.to_json(), "adapt_command": self.adapt_command(summary.labelled),
                "adapt_after": ADAPT_SUGGEST_AFTER}

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / "review.html")

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(self.snapshot))

    async def image(self, request: web.Request) -> web.Response:
        name = request.query.get("path", "")
        rows = await asyncio.to_thread(self.store.rows)
        if name not in rows or rows[name].status == "unreadable":  # only what the state lists: no path tricks
            return _error(404, f"no image {name!r} in this folder's review")
        path = self.store.folder / name
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            return _error(404, f"{name}: {exc.strerror or exc}")
        kind = BROWSER_TYPES.get(path.suffix.lower())
        if kind is None:
            data, kind = await asyncio.to_thread(_as_png, data), "image/png"
        return web.Response(body=data, content_type=kind)

    async def label(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":  # also keeps other sites' plain form posts out
            return _error(415, "send JSON: Content-Type application/json")
        try:
            body = json.loads(await request.read())
            image, status, text = body["image"], body["status"], body.get("text")
            if not isinstance(image, str) or not isinstance(status, str) or not isinstance(text, (str, type(None))):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, 'expected {"image": str, "status": str, "text": str}')
        try:
            row = await asyncio.to_thread(self.store.set_label, image, status, text)
        except LabelStateError as exc:
            return _error(400, str(exc))
        rows = await asyncio.to_thread(self.store.rows)
        summary = summarize(rows.values())
        return web.json_response({"row": row_json(row), "summary": summary.to_json(),
                                  "adapt_command": self.adapt_command(summary.labelled)})

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (``port`` 0 picks a free one)."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _as_png(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise web.HTTPUnsupportedMediaType(text="the image cannot be decoded")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise web.HTTPUnsupportedMediaType(text="the image cannot be converted to PNG")
    return buffer.tobytes()


async def serve_review(folder: Path, host: str, port: int, announce=print) -> None:
    """Serve the review page until cancelled (Ctrl-C)."""
    app = ReviewApp(folder)
    bound = await app.start(host, port)
    shown = f"[{host}]" if ":" in host else host
    if host not in ("127.0.0.1", "localhost", "::1"):
        announce(f"warning: the review page has no password and listens on {host}: anyone who can reach it can "
                 "read the images and change the labels")
    announce(f"review page: http://{shown}:{bound}/  (Enter confirms, type to correct, Esc skips, Ctrl+Z undoes; "
             "Ctrl-C here stops the server: every decision is already saved)")
    try:
        await asyncio.Event().wait()
    finally:
        await app.stop()
