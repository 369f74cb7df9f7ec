"""``ocr client``: send images to a running ``ocr serve`` and print what it read."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

from crnn.decode import Result
from ocr.read import expand_inputs, format_reading
from ocr.v1 import ocr_pb2, ocr_pb2_grpc


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
) -> int:
    """Send all images in one request and print one line per image (as ``ocr read`` does)."""
    paths = list(expand_inputs(inputs))
    if not paths:
        raise FileNotFoundError("no images found in " + ", ".join(map(str, inputs)))
    request = ocr_pb2.RecognizeRequest(
        images=[ocr_pb2.Image(content=p.read_bytes(), id=str(p)) for p in paths], model=model, allowlist=allow or ""
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
        print(format_reading(result.id, Result(result.text, result.confidence), as_json))
    return 0
