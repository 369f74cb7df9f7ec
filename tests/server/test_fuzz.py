"""10,000 fuzzed payloads across gRPC and HTTP: never INTERNAL or 500, the same status from both, still SERVING.

8,000 malformed images (4,000 per protocol) and 1,000 random requests
(hypothesis: any mix of fields and good or bad images) sent over both.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import random
import struct
import zlib
from collections.abc import Iterator
from functools import cache

import aiohttp
import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ocr.v1 import ocr_pb2_grpc
from server.errors import HTTP_STATUS
from tests.server.conftest import ServerThread, config, named_crops, request
from tests.test_preprocess import png_header_only


def _encoded(fmt: str, rng: random.Random) -> bytes:
    array = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 255, (rng.randint(8, 40), rng.randint(8, 120)))
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(info), 0, 0, 54) + info


def _gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", min(width, 65535), min(height, 65535)) + b"\x00\x00\x00;"


def malformed_payloads(count: int, seed: int = 1234) -> list[bytes]:
    """Random bytes, truncated and bit-flipped PNG/JPEG/WebP/BMP, absurd header sizes, empty input."""
    rng = random.Random(seed)
    valid = [_encoded(fmt, rng) for fmt in ("PNG", "JPEG", "WEBP", "BMP", "TIFF") for _ in range(4)]
    payloads: list[bytes] = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM"]
    while len(payloads) < count:
        kind = rng.randrange(6)
        base = rng.choice(valid)
        if kind == 0:
            payloads.append(rng.randbytes(rng.randint(1, 2048)))
        elif kind == 1:
            payloads.append(base[: rng.randint(1, len(base) - 1)])
        elif kind == 2:
            data = bytearray(base)
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            payloads.append(bytes(data))
        elif kind == 3:
            width, height = rng.choice([(0, 10), (10, 0), ((1 << 31) - 1, 1), (100000, 100000), (65535, 65535)])
            payloads.append(rng.choice([png_header_only, _bmp_header, _gif_header])(width, height))
        elif kind == 4:  # a valid header followed by garbage
            payloads.append(base[:40] + rng.randbytes(rng.randint(0, 500)))
        else:  # a PNG with a corrupt compressed stream but correct checksums
            ihdr = struct.pack(">IIBBBBB", rng.randint(1, 300), rng.randint(1, 300), 8, 0, 0, 0, 0)

            def chunk(kind: bytes, data: bytes) -> bytes:
                return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

            body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", rng.randbytes(64)) + chunk(b"IEND", b"")
            payloads.append(b"\x89PNG\r\n\x1a\n" + body)
    return payloads


@pytest.fixture(scope="module")
def both(fp32_recognizer) -> Iterator[ServerThread]:
    """A server answering gRPC and HTTP/JSON."""
    srv = ServerThread(config(http_port=0), {"english_g2": fp32_recognizer}).start()
    yield srv
    srv.stop()


async def _grpc_codes(target: str, payloads: list[bytes]) -> list[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        semaphore = asyncio.Semaphore(64)

        async def one(data: bytes) -> str:
            async with semaphore:
                try:
                    await stub.Recognize(request(data), timeout=60)
                    return "OK"
                except grpc.aio.AioRpcError as exc:
                    return exc.code().name

        return await asyncio.gather(*(one(p) for p in payloads))


async def _http_codes(url: str, payloads: list[bytes]) -> list[str]:
    """Half the payloads as JSON (base64), half as multipart uploads; the gRPC code name from each answer."""
    async with aiohttp.ClientSession() as session:
        semaphore = asyncio.Semaphore(64)

        async def one(i: int, data: bytes) -> str:
            if i % 2:
                form = aiohttp.FormData()
                form.add_field("image", data, filename=f"fuzz{i}.bin")
                kwargs: dict = {"data": form}
            else:
                kwargs = {"json": {"images": [{"content": base64.b64encode(data).decode(), "id": f"fuzz{i}"}]}}
            async with semaphore, session.post(f"{url}/v1/recognize", **kwargs) as response:
                body = await response.json()
                return "OK" if response.status == 200 else f"{response.status} {body['error']['code']}"

        return await asyncio.gather(*(one(i, p) for i, p in enumerate(payloads)))


def _serving(srv: ServerThread) -> bool:
    with grpc.insecure_channel(srv.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
    ready = asyncio.run(_get(f"{srv.http_url}/readyz"))
    return status == health_pb2.HealthCheckResponse.SERVING and ready == 200


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


def test_fuzzed_images_never_break_the_server(both) -> None:
    """4,000 malformed images, half over gRPC and half over HTTP: OK or INVALID_ARGUMENT (400), nothing else."""
    codes = asyncio.run(_grpc_codes(both.target, malformed_payloads(2000)))
    assert len(codes) == 2000
    assert set(codes) <= {"OK", "INVALID_ARGUMENT"}, set(codes)
    assert codes.count("INVALID_ARGUMENT") > 1500
    http = asyncio.run(_http_codes(both.http_url, malformed_payloads(2000, seed=4321)))
    assert len(http) == 2000
    assert set(http) <= {"OK", "400 INVALID_ARGUMENT"}, set(http)
    assert http.count("400 INVALID_ARGUMENT") > 1500
    assert _serving(both)


_IMAGES = [b"", b"junk", png_header_only(1 << 20, 1 << 20)]
_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=12)
_REQUESTS = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["", "english_g2", "no_such_model", "../english_g2"]),
    "allowlist": _TEXT,
    "pattern": st.one_of(_TEXT, st.sampled_from([r"\d+", "[A-Z]{2,3}", "(", "a{9999}", "(a|b)*a(a|b){16}"])),
    "lexicon": st.lists(_TEXT, max_size=4),
    "lexicon_ignore_case": st.booleans(),
    "pattern_ignore_case": st.booleans(),
    "beam_width": st.integers(-3, 100),
    "min_confidence": st.floats(-0.5, 1.5, width=32),
    "char_details": st.booleans(),
})


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_REQUESTS, images=st.lists(st.integers(0, len(_IMAGES)), max_size=3))
def test_random_requests_get_the_same_status_from_both_protocols(both, fields, images) -> None:
    """Any mix of fields and images: the same status over gRPC and HTTP, never INTERNAL / 500."""
    contents = [_IMAGES[i] if i < len(_IMAGES) else _real_crop() for i in images]
    message = request(*contents, **fields)
    with grpc.insecure_channel(both.target) as channel:
        try:
            ocr_pb2_grpc.RecognizerStub(channel).Recognize(message, timeout=60)
            grpc_code = "OK"
        except grpc.RpcError as exc:
            grpc_code = exc.code().name
    body = json_format.MessageToJson(message)
    status, answer = _post_json(both.http_url, body)
    http_code = "OK" if status == 200 else answer["error"]["code"]
    assert grpc_code == http_code, (fields, grpc_code, answer)
    assert grpc_code != "INTERNAL" and status != 500
    assert HTTP_STATUS[grpc.StatusCode[grpc_code]] == status


def _post_json(url: str, body: str) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", "/v1/recognize", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@cache
def _real_crop() -> bytes:
    return named_crops(1)[0][1]
