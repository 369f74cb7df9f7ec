"""``ocr serve --ray`` against ``ocr serve``: the same outside client gets the same answers from both.

Needs the ``[ray]`` extra (skipped without it); starts a local Ray instance
in a subprocess, on loopback ports picked here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crnn import DEFAULT_MODEL, Recognizer
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from tests.conftest import ROOT
from tests.server.conftest import ServerThread, config, request
from tests.server.conftest import named_crops as real_crops

pytest.importorskip("ray.serve", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module")
def running() -> Iterator[ServerThread]:
    """``ocr serve``'s own server with the default model, as ``ocr serve --ray`` below serves it."""
    recognizer = Recognizer(DEFAULT_MODEL, device="cpu", precision="fp32")
    srv = ServerThread(config(models=(DEFAULT_MODEL,)), {DEFAULT_MODEL: recognizer}).start()
    yield srv
    srv.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise AssertionError(f"ocr serve --ray exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def ray_target(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            # Ray's gRPC proxy binds every interface whatever --host says, so --ray insists on hearing it; the
            # test's client still talks to 127.0.0.1 only.
            [sys.executable, "-m", "ocr", "serve", "--ray", "--host", "0.0.0.0", "--port", str(port),
             "--ray-http-port", str(free_port()),
             "--device", "cpu", "--precision", "fp32", "--cpus-per-replica", "1", "--grace", "5"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_line(log, "gRPC proxy on port", proc, timeout=240)
        yield f"127.0.0.1:{port}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        assert "ocr serve --ray: stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def read_all(target: str, crops: list[tuple[str, bytes]]) -> list[ocr_pb2.Recognition]:
    """One request per crop, 8 in flight at a time, plus nothing else: what an outside client does."""
    with grpc.insecure_channel(target) as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)

        def one(crop: tuple[str, bytes]) -> ocr_pb2.Recognition:
            image = ocr_pb2.Image(content=crop[1], id=crop[0])
            return stub.Recognize(ocr_pb2.RecognizeRequest(images=[image], char_details=True), timeout=60).results[0]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, crops))


def status_of(target: str, req: ocr_pb2.RecognizeRequest) -> tuple[grpc.StatusCode, str]:
    with grpc.insecure_channel(target) as channel:
        try:
            ocr_pb2_grpc.RecognizerStub(channel).Recognize(req, timeout=60)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_same_texts_from_both_servers(running, ray_target) -> None:
    crops = real_crops()
    assert len(crops) >= 8
    direct = read_all(running.target, crops)
    on_ray = read_all(ray_target, crops)
    assert [r.id for r in on_ray] == [name for name, _ in crops]
    assert [r.text for r in on_ray] == [r.text for r in direct]
    assert all(abs(a.confidence - b.confidence) < 1e-3 for a, b in zip(on_ray, direct))
    assert [len(r.chars) for r in on_ray] == [len(r.chars) for r in direct]


def test_batched_request_matches_single_requests(ray_target) -> None:
    crops = real_crops(16)
    singles = read_all(ray_target, crops)
    with grpc.insecure_channel(ray_target) as channel:
        response = ocr_pb2_grpc.RecognizerStub(channel).Recognize(
            ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=c, id=n) for n, c in crops]), timeout=60
        )
    assert response.model == DEFAULT_MODEL
    assert [r.text for r in response.results] == [r.text for r in singles]


@pytest.mark.parametrize(
    "req",
    [
        request(b"not an image"),
        request(b"", b""),
        ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=b"\x89PNG\r\n")], allowlist="\u05d0"),  # Hebrew
        ocr_pb2.RecognizeRequest(model="no-such-model"),
    ],
    ids=["garbage", "empty", "allowlist", "model"],
)
def test_bad_input_gets_the_same_status_from_both(running, ray_target, req) -> None:
    expected = status_of(running.target, req)
    assert expected[0] in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert status_of(ray_target, req) == expected


def test_health_and_model_listing_through_the_proxy(running, ray_target) -> None:
    with grpc.insecure_channel(ray_target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        listed = ocr_pb2_grpc.RecognizerStub(channel).ListModels(ocr_pb2.ListModelsRequest(), timeout=30)
    with grpc.insecure_channel(running.target) as channel:
        direct = ocr_pb2_grpc.RecognizerStub(channel).ListModels(ocr_pb2.ListModelsRequest(), timeout=30)
    assert listed.default_model == direct.default_model == DEFAULT_MODEL
    assert [(m.name, m.checksum, m.alphabet) for m in listed.models] == [
        (m.name, m.checksum, m.alphabet) for m in direct.models
    ]


def test_detect_is_refused_under_ray_with_unimplemented(ray_target) -> None:
    req = ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=real_crops(1)[0][1], detect=True)])
    code, message = status_of(ray_target, req)
    assert code == grpc.StatusCode.UNIMPLEMENTED and "--ray" in message
