"""An in-process server on a free loopback port, run on its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from itertools import islice

import grpc
import pytest

from crnn import Recognizer
from ocr.data.datasets import open_dataset
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.app import OcrServer
from server.config import ServerConfig
from tests.conftest import EXAMPLES, SHARED_DATA


class ServerThread:
    """Runs an :class:`OcrServer` on 127.0.0.1 and a free port, in a background event loop."""

    def __init__(self, config: ServerConfig, recognizers: dict[str, Recognizer] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = OcrServer(config, recognizers)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def call(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self._thread.start()
        self.port = self.call(self.server.start())
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        assert self.server.http is not None, "started without http_port"
        return f"http://127.0.0.1:{self.server.http.port}"

    def stop(self, grace: float = 5.0) -> None:
        self.call(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def config(**overrides) -> ServerConfig:
    """A test server's config; it serves english_g2 (the fixtures' recogniser) unless ``models`` says otherwise:
    tests/server/test_default_model.py serves the default model. No limit on the queue's seconds of work: tests
    that send bursts expect every request answered on a loaded machine (test_queue_wait_limit sets one)."""
    base = {"host": "127.0.0.1", "port": 0, "device": "cpu", "precision": "fp32", "grace_s": 5.0,
            "models": ("english_g2",), "max_queue_wait_s": None}
    return ServerConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def fp32_recognizer(loaded_model) -> Recognizer:
    return Recognizer(loaded_model, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def running(fp32_recognizer) -> Iterator[ServerThread]:
    srv = ServerThread(config(), {"english_g2": fp32_recognizer}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http_running(fp32_recognizer) -> Iterator[ServerThread]:
    """A server answering gRPC and HTTP (with the web page) on free loopback ports, one per test module."""
    srv = ServerThread(config(http_port=0), {"english_g2": fp32_recognizer}).start()
    yield srv
    srv.stop()


@pytest.fixture()
def stub(running: ServerThread) -> Iterator[ocr_pb2_grpc.RecognizerStub]:
    with grpc.insecure_channel(running.target) as channel:
        yield ocr_pb2_grpc.RecognizerStub(channel)


def request(*contents: bytes, **fields) -> ocr_pb2.RecognizeRequest:
    images = [ocr_pb2.Image(content=c, id=f"img{i}") for i, c in enumerate(contents)]
    return ocr_pb2.RecognizeRequest(images=images, **fields)


def named_crops(n: int = 50) -> list[tuple[str, bytes]]:
    """``n`` crops of a shared set when there is one, else the bundled examples: (name, encoded bytes)."""
    shared = SHARED_DATA / "iiit5k_test_even_scenes"
    dataset = open_dataset(shared if shared.is_dir() else EXAMPLES)
    return [(s.name, s.image) for s in islice(dataset, n)]  # type: ignore[misc]
