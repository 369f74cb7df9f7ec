"""2,000+ malformed payloads: the server answers each with OK or INVALID_ARGUMENT and stays SERVING."""

from __future__ import annotations

import asyncio
import io
import random
import struct
import zlib

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from ocr.v1 import ocr_pb2_grpc
from tests.server.conftest import request
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


def test_fuzzed_images_never_break_the_server(running) -> None:
    payloads = malformed_payloads(2000)

    async def drive() -> list[grpc.StatusCode]:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            semaphore = asyncio.Semaphore(64)

            async def one(data: bytes) -> grpc.StatusCode:
                async with semaphore:
                    try:
                        await stub.Recognize(request(data), timeout=60)
                        return grpc.StatusCode.OK
                    except grpc.aio.AioRpcError as exc:
                        return exc.code()

            return await asyncio.gather(*(one(p) for p in payloads))

    codes = asyncio.run(drive())
    assert len(codes) == 2000
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}, set(codes)
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) > 1500
    with grpc.insecure_channel(running.target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status
    assert status == health_pb2.HealthCheckResponse.SERVING
