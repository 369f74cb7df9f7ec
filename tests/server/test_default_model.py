"""The server with its default configuration: PP-OCRv6 small answers over gRPC and HTTP, english_g2 on request,
and bad input on the new model's paths gets clear errors while the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crnn import DEFAULT_MODEL, Recognizer
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from tests.conftest import encode
from tests.server.conftest import ServerThread, config, named_crops
from tests.server.test_http import call, json_request

pytest.importorskip("rapidocr", reason="the default model's weights ship in the rapidocr wheel")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """Loads its models itself, as ``ocr serve --model ppocrv6_small --model english_g2`` does."""
    srv = ServerThread(config(http_port=0, models=(DEFAULT_MODEL, "english_g2"))).start()
    yield srv
    srv.stop()


def recognize(target: str, contents: list[bytes], **fields) -> ocr_pb2.RecognizeResponse:
    with grpc.insecure_channel(target) as channel:
        images = [ocr_pb2.Image(content=c, id=f"img{i}") for i, c in enumerate(contents)]
        return ocr_pb2_grpc.RecognizerStub(channel).Recognize(
            ocr_pb2.RecognizeRequest(images=images, **fields), timeout=120)


def status_of(target: str, contents: list[bytes], **fields) -> tuple[grpc.StatusCode, str]:
    try:
        recognize(target, contents, **fields)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_default_model_answers_over_grpc_and_http(server: ServerThread) -> None:
    assert DEFAULT_MODEL == "ppocrv6_small"
    crops = named_crops(12)
    response = recognize(server.target, [data for _, data in crops])
    assert response.model == DEFAULT_MODEL
    expected = Recognizer(DEFAULT_MODEL, device="cpu", precision="fp32").recognize([data for _, data in crops])
    assert [r.text for r in response.results] == [r.text for r in expected]
    status, body, _ = call("POST", f"{server.http_url}/v1/recognize", json=json_request(*crops))
    assert status == 200, body
    assert body["model"] == DEFAULT_MODEL
    assert [r["text"] for r in body["results"]] == [r.text for r in response.results]


def test_page_lines_read_as_in_process_beside_crops(server: ServerThread) -> None:
    """A page's lines go through the server's batcher at the model's page floor (128) and crops at 256, in one
    request: the page reads line for line as the in-process page reader reads it, and each crop as it reads alone."""
    from tests.pages import render_page
    from textdet import Detector, PageReader

    page = render_page([(40, 40, "PAID"), (40, 120, "TOTAL 12.50"), (440, 120, "CASH")])[0]
    crops = named_crops(3)
    images = [ocr_pb2.Image(content=data, id=name) for name, data in crops]
    images.insert(1, ocr_pb2.Image(content=encode(page), id="page", detect=True))
    with grpc.insecure_channel(server.target) as channel:
        response = ocr_pb2_grpc.RecognizerStub(channel).Recognize(ocr_pb2.RecognizeRequest(images=images), timeout=120)
    recognizer = Recognizer(DEFAULT_MODEL, device="cpu", precision="fp32")
    assert recognizer.page_min_width == 128
    expected = PageReader(recognizer, Detector()).read([page])[0]
    found = response.results[1]
    assert [line.text for line in found.lines] == [line.text for line in expected]
    assert [line.text for line in found.lines] == ["PAID", "TOTAL 12.50", "CASH"]
    alone = recognizer.recognize([data for _, data in crops])
    assert [r.text for i, r in enumerate(response.results) if i != 1] == [r.text for r in alone]


def test_english_g2_still_answers_by_name(server: ServerThread) -> None:
    crops = named_crops(4)
    response = recognize(server.target, [data for _, data in crops], model="english_g2")
    assert response.model == "english_g2"
    expected = Recognizer("english_g2", device="cpu", precision="fp32").recognize([data for _, data in crops])
    assert [r.text for r in response.results] == [r.text for r in expected]


def test_bad_input_gets_clear_errors_and_the_server_keeps_serving(server: ServerThread) -> None:
    one_row = np.full((1, 60), 255, np.uint8)
    one_row[0, 20:40] = 0
    assert recognize(server.target, [encode(one_row)]).results[0].text is not None
    code, message = status_of(server.target, [encode(np.full((48, 20_000), 255, np.uint8))])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "aspect ratio" in message
    code, message = status_of(server.target, [encode(one_row)], model="ppocrv7_small")
    assert code == grpc.StatusCode.NOT_FOUND and "ppocrv7_small" in message
    code, message = status_of(server.target, [encode(one_row)], allowlist="abc\u05d0")  # Hebrew: not in its alphabet
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "\u05d0" in message
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    crops = named_crops(2)
    assert len(recognize(server.target, [data for _, data in crops]).results) == 2
