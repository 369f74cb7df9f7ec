"""Shutdown under load loses no accepted request; a real `ocr serve` process drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ocr.v1 import ocr_pb2_grpc
from tests.conftest import EXAMPLES, ROOT, example_bytes
from tests.server.conftest import ServerThread, config, request


def test_shutdown_under_load_answers_every_accepted_request(fp32_recognizer) -> None:
    srv = ServerThread(config(max_queue_delay_ms=20, grace_s=60), {"english_g2": fp32_recognizer}).start()
    crops = [example_bytes(i) for i in range(8)]
    expected = [r.text for r in fp32_recognizer.recognize(crops)]
    service = srv.server.service
    in_flight_at_stop: list[int] = []

    async def drive() -> list[tuple[grpc.StatusCode, str, int]]:
        async with grpc.aio.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)

            async def one(i: int) -> tuple[grpc.StatusCode, str, int]:
                try:
                    response = await stub.Recognize(request(*crops), timeout=120)
                    return grpc.StatusCode.OK, "|".join(r.text for r in response.results), i
                except grpc.aio.AioRpcError as exc:
                    return exc.code(), exc.details() or "", i

            tasks = [asyncio.ensure_future(one(i)) for i in range(60)]
            while service.in_flight < 10:  # wait until the server holds work in progress
                await asyncio.sleep(0.005)
            in_flight_at_stop.append(service.in_flight)
            stopper = threading.Thread(target=srv.stop, kwargs={"grace": 60})
            stopper.start()
            results = await asyncio.gather(*tasks)
            stopper.join(120)
            return results

    results = asyncio.run(drive())
    ok = [r for r in results if r[0] == grpc.StatusCode.OK]
    refused = [r for r in results if r[0] != grpc.StatusCode.OK]
    assert in_flight_at_stop[0] >= 10
    assert all(text == "|".join(expected) for _, text, _ in ok)
    assert all(code == grpc.StatusCode.UNAVAILABLE for code, _, _ in refused), refused[:3]
    assert service.answered == service.accepted == len(ok)  # every accepted call answered
    assert len(ok) >= in_flight_at_stop[0]


def test_sigterm_drains_and_exits_zero(tmp_path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocr", "serve", "--port", "0", "--precision", "fp32"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        port = None
        for line in proc.stdout:  # type: ignore[union-attr]
            if "listening on" in line:
                port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
                break
        assert port, "server did not start"
        target = f"127.0.0.1:{port}"
        with grpc.insecure_channel(target) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING
            response = ocr_pb2_grpc.RecognizerStub(channel).Recognize(
                request((EXAMPLES / "images" / "00.png").read_bytes()), timeout=30
            )
            assert response.results[0].text == "HELLO"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert "drained" in proc.stdout.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
