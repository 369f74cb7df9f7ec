"""HTTP/JSON beside gRPC: the same ``ocr.v1`` contract, limits, token and batcher, on the same event loop.

Bodies are the proto3 JSON mapping of the gRPC messages (field names as in
``ocr.proto``; image bytes in base64), so every field the contract gains is
served here without a second schema. A request can also be a multipart
upload: image files in ``image`` parts, the other fields as form fields.

Every error body is ``{"error": {"code": GRPC_STATUS_NAME, "message": ...}}``
with the HTTP status of :data:`server.errors.HTTP_STATUS`; refusals that only
HTTP has (body over the limit: 413, wrong Content-Type: 415, unknown path:
404, wrong method: 405) carry the gRPC code the same mistake would get there.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ocr.v1 import ocr_pb2
from server.auth import token_matches
from server.config import ServerConfig
from server.errors import HTTP_STATUS, RequestError, status_for
from server.metrics import Metrics
from server.openapi import openapi_spec
from server.service import RecognizerService

log = logging.getLogger(__name__)
WEB_ROOT = Path(__file__).parent / "web"
#: Paths anyone may fetch when a token is set: the page and its files, health, metrics and the API description.
OPEN_PATHS = ("/", "/healthz", "/readyz", "/metrics", "/openapi.json")
#: Seconds the caller is willing to wait (like gRPC's deadline); optional.
TIMEOUT_HEADER = "X-Request-Timeout"
#: gRPC code names for refusals the HTTP layer makes itself (see the module docstring).
_CODE_OF_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED, 404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
}
_RETRY_AFTER = {429: "1", 503: "1"}
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"", "0", "false", "off", "no"}
_CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; object-src 'none'"


def error_response(status: int, code: grpc.StatusCode, message: str) -> web.Response:
    """The JSON error body every refusal gets."""
    headers = {"Retry-After": _RETRY_AFTER[status]} if status in _RETRY_AFTER else None
    return web.json_response({"error": {"code": code.name, "message": message}}, status=status, headers=headers)


def to_json(message: Message) -> dict[str, Any]:
    """A response message as JSON: proto field names, every field present (empty ones too)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _bad(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def decode_base64(text: str, where: str) -> bytes:
    """Standard or URL-safe base64 (padding optional); anything else is the caller's mistake."""
    padded = text + "=" * (-len(text) % 4)
    altchars = b"-_" if ("-" in text or "_" in text) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"{where} is not valid base64 ({exc})") from exc


def request_from_json(body: bytes) -> ocr_pb2.RecognizeRequest:
    """A ``RecognizeRequest`` from its JSON form; INVALID_ARGUMENT names what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object (a RecognizeRequest)")
    images = data.get("images")
    contents: list[bytes] = []
    if isinstance(images, list):
        for i, image in enumerate(images):
            if not isinstance(image, dict):
                raise _bad(f"images[{i}] must be an object with 'content' (base64) and 'id'")
            content = image.pop("content", "")
            if not isinstance(content, str):
                raise _bad(f"images[{i}].content must be a base64 string")
            contents.append(decode_base64(content, f"images[{i}].content"))
    request = ocr_pb2.RecognizeRequest()
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        raise _bad(f"bad RecognizeRequest: {exc}") from exc
    for image, content in zip(request.images, contents):
        image.content = content
    return request


def _form_value(field: FieldDescriptor, name: str, text: str) -> Any:
    """A form field's text as the JSON value its proto field takes."""
    try:
        if field.type == FieldDescriptor.TYPE_BOOL:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in _TRUE
        if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
            return int(text)
        if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return float(text)
    except ValueError as exc:
        raise _bad(f"form field {name!r}: {exc}") from exc
    return text


def request_from_form(form: Any) -> ocr_pb2.RecognizeRequest:
    """A ``RecognizeRequest`` from a multipart upload: ``image`` file parts plus the other fields as form fields.

    Repeated text fields (``lexicon``) may be sent several times or as one value with a word per line.
    A ``detect`` form field (true/false) sets ``Image.detect`` on every uploaded image.
    """
    fields = ocr_pb2.RecognizeRequest.DESCRIPTOR.fields_by_name
    images: list[ocr_pb2.Image] = []
    data: dict[str, Any] = {}
    detect = False
    for name, value in form.items():
        if isinstance(value, web.FileField):
            if name not in ("image", "images"):
                raise _bad(f"file part {name!r}: send images as parts named 'image'")
            images.append(ocr_pb2.Image(content=value.file.read(), id=value.filename or f"image{len(images)}"))
            continue
        if name == "detect":
            detect = _form_value(ocr_pb2.Image.DESCRIPTOR.fields_by_name["detect"], name, value)
            continue
        field = fields.get(name)
        if field is None or field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_BYTES):
            settable = sorted(f for f, d in fields.items() if d.type != FieldDescriptor.TYPE_MESSAGE)
            raise _bad(f"unknown form field {name!r}; fields: {', '.join(settable)}, detect and 'image' files")
        if field.is_repeated:
            data.setdefault(name, []).extend(line.strip() for line in value.splitlines() if line.strip())
        else:
            data[name] = _form_value(field, name, value)
    request = ocr_pb2.RecognizeRequest()
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        raise _bad(f"bad form field: {exc}") from exc
    for image in images:
        image.detect = detect
    request.images.extend(images)
    return request


def _timeout(request: web.Request) -> float | None:
    text = request.headers.get(TIMEOUT_HEADER)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise _bad(f"{TIMEOUT_HEADER} must be a positive number of seconds, got {text!r}")
    return seconds


class HttpApi:
    """The aiohttp application: routes, token check and JSON errors around a :class:`RecognizerService`."""

    def __init__(self, service: RecognizerService, metrics: Metrics, config: ServerConfig) -> None:
        self.service = service
        self.metrics = metrics
        self.config = config
        self.app = web.Application(
            client_max_size=config.max_message_bytes, middlewares=[self._errors, self._authorize, self._headers]
        )
        self.app.add_routes([
            web.post("/v1/recognize", self.recognize),
            web.get("/v1/models", self.models),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.prometheus),
            web.get("/openapi.json", self.openapi),
            web.get("/", self.index),
            web.static("/static", WEB_ROOT, append_version=False),
        ])
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int, tls: tuple[Path, Path] | None = None) -> int:
        """Listen on ``host:port`` (0: a free port); returns the port."""
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile=tls[0], keyfile=tls[1])
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Close the listening socket and every connection (call after the service has drained)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _CODE_OF_HTTP.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            if exc.status == 413:
                message = f"body over the limit of {self.config.max_message_bytes} bytes (--max-message-mb)"
            return error_response(exc.status, code, message)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            return error_response(500, grpc.StatusCode.INTERNAL, "internal error")

    @web.middleware
    async def _authorize(self, request: web.Request, handler):
        token = self.config.token
        if token and request.path not in OPEN_PATHS and not request.path.startswith("/static/"):
            if not token_matches([("authorization", request.headers.get("Authorization", ""))], token):
                return error_response(401, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        return await handler(request)

    @web.middleware
    async def _headers(self, request: web.Request, handler):
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path == "/" or request.path.startswith("/static/"):
            response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    async def _parse(self, request: web.Request) -> ocr_pb2.RecognizeRequest:
        if request.content_length is not None and request.content_length > self.config.max_message_bytes:
            raise web.HTTPRequestEntityTooLarge(self.config.max_message_bytes, request.content_length)
        if request.content_type == "application/json":
            return request_from_json(await request.read())
        if request.content_type == "multipart/form-data":
            return request_from_form(await request.post())
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Type {request.content_type!r}: send application/json or multipart/form-data"
        )

    async def recognize(self, request: web.Request) -> web.Response:
        """``POST /v1/recognize``: a RecognizeRequest as JSON or a multipart upload -> RecognizeResponse JSON."""
        try:
            message = await self._parse(request)
            timeout = _timeout(request)
        except RequestError as exc:
            self.metrics.requests.labels("Recognize", exc.code.name, "http").inc()
            return error_response(HTTP_STATUS[exc.code], exc.code, str(exc))
        except web.HTTPException as exc:
            code = _CODE_OF_HTTP.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT)
            self.metrics.requests.labels("Recognize", code.name, "http").inc()
            raise
        try:
            response = await self.service.recognize(message, timeout, "http")
        except Exception as exc:
            code, text = status_for(exc)
            return error_response(HTTP_STATUS.get(code, 500), code, text)
        return web.json_response(to_json(response))

    async def models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``: ListModelsResponse JSON."""
        return web.json_response(to_json(self.service.list_models("http")))

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process answers."""
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 once the models are loaded and until draining starts, else 503."""
        if self.service.ready and not self.service.draining:
            return web.json_response({"status": "SERVING"})
        state = "draining" if self.service.draining else "starting: models are loading"
        return error_response(503, grpc.StatusCode.UNAVAILABLE, f"NOT_SERVING ({state})")

    async def prometheus(self, request: web.Request) -> web.Response:
        """The same Prometheus registry as ``--metrics-port``."""
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 description, generated from the proto."""
        return web.json_response(openapi_spec())

    async def index(self, request: web.Request) -> web.FileResponse:
        """The web page to try the service."""
        return web.FileResponse(WEB_ROOT / "index.html")
