"""``ocr client``: send images to a running ``ocr serve`` and print what it read."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

from crnn.decode import CharResult, Result
from ocr.data.inputs import expand_inputs
from ocr.output.lines import format_reading
from ocr.output.pages import format_page
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from textdet.page import Line


def open_channel(target: str, tls_ca: Path | None = None) -> grpc.Channel:
    """An insecure channel, or a TLS one trusting ``tls_ca`` (a PEM file)."""
    if tls_ca is not None:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
    return grpc.insecure_channel(target)


def run_client(
    inputs: tuple[Path, ...],
    target: str,
    allow: str | None,
    as_json: bool,
    model: str = "",
    token: str | None = None,
    tls_ca: Path | None = None,
    timeout: float = 60.0,
    detect: bool = False,
) -> int:
    """Send all images in one request and print what was read (as ``ocr read`` does, with or without detect)."""
    paths = list(expand_inputs(inputs))
    if not paths:
        raise FileNotFoundError("no images found in " + ", ".join(map(str, inputs)))
    request = ocr_pb2.RecognizeRequest(
        images=[ocr_pb2.Image(content=p.read_bytes(), id=str(p), detect=detect) for p in paths], model=model,
        allowlist=allow or "", char_details=detect and as_json,
    )
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with open_channel(target, tls_ca) as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        try:
            response = stub.Recognize(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            print(f"ocr client: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    for result in response.results:
        if detect:
            print(format_page(result.id, [_line(line) for line in result.lines], as_json))
        else:
            print(format_reading(result.id, Result(result.text, result.confidence), as_json))
    return 0


def _line(line: ocr_pb2.Line) -> Line:
    chars = [CharResult(c.text, c.confidence, c.x_start, c.x_end) for c in line.chars]
    return Line([(p.x, p.y) for p in line.box], line.text, line.confidence, chars, line.rejected)
