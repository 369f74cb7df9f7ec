"""Whole pages over gRPC and HTTP: the detect flag, lines in the result, crops unchanged beside pages."""

from __future__ import annotations

import base64

import grpc
import pytest

from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from tests.conftest import encode, example_bytes
from tests.pages import render_page
from tests.server.conftest import ServerThread
from tests.server.test_http import call
from tests.test_preprocess import png_header_only

ROWS = [(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50")]


@pytest.fixture(scope="module")
def page() -> bytes:
    return encode(render_page(ROWS)[0])


def recognize(srv: ServerThread, *images: ocr_pb2.Image, **fields) -> ocr_pb2.RecognizeResponse:
    with grpc.insecure_channel(srv.target) as channel:
        return ocr_pb2_grpc.RecognizerStub(channel).Recognize(ocr_pb2.RecognizeRequest(images=images, **fields))


def test_the_detector_loads_on_the_first_page_and_reads_its_lines(http_running: ServerThread, page: bytes) -> None:
    assert http_running.server._detector is None  # crops never pay for the detector
    crop = ocr_pb2.Image(content=example_bytes(0), id="crop")
    alone = recognize(http_running, crop, char_details=True).results[0]
    response = recognize(http_running, crop, ocr_pb2.Image(content=page, id="page", detect=True), char_details=True)
    beside, found = response.results
    assert (beside.text, beside.confidence, len(beside.lines)) == (alone.text, alone.confidence, 0)
    assert found.id == "page" and [line.text.upper() for line in found.lines] == ["INVOICE 2024", "TOTAL 12.50"]
    assert found.text == "\n".join(line.text for line in found.lines)
    assert found.confidence == pytest.approx(min(line.confidence for line in found.lines))
    first = found.lines[0]
    assert len(first.box) == 4 and 30 <= first.box[0].x <= 45 and len(first.chars) == len(first.text)


def test_pages_without_text_have_no_lines_and_bad_pages_are_refused(http_running: ServerThread) -> None:
    blank = encode(render_page([])[0])
    tiny = encode(render_page([], size=(1, 1))[0])
    pages = [ocr_pb2.Image(content=blank, detect=True), ocr_pb2.Image(content=tiny, detect=True)]
    results = recognize(http_running, *pages)
    assert [(r.text, r.confidence, len(r.lines)) for r in results.results] == [("", 0.0, 0), ("", 0.0, 0)]
    with pytest.raises(grpc.RpcError) as error:
        recognize(http_running, ocr_pb2.Image(content=b"", id="nothing", detect=True))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nothing" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:  # a header declaring 3.6 gigapixels: refused before decoding
        recognize(http_running, ocr_pb2.Image(content=png_header_only(60000, 60000), id="huge", detect=True))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "pixels" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        recognize(http_running, *[ocr_pb2.Image(content=blank, detect=True)] * 17)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit is 16" in error.value.details()


def test_min_confidence_rejects_page_lines(http_running: ServerThread, page: bytes) -> None:
    (found,) = recognize(http_running, ocr_pb2.Image(content=page, detect=True), min_confidence=1.0).results
    assert found.lines and all(line.rejected and not line.text for line in found.lines) and found.text == ""


def test_pages_over_http_json_and_multipart(http_running: ServerThread, page: bytes) -> None:
    body = {"images": [{"content": base64.b64encode(page).decode(), "id": "p", "detect": True}]}
    status, answer, _ = call("POST", f"{http_running.http_url}/v1/recognize", json=body)
    assert status == 200
    lines = answer["results"][0]["lines"]
    assert [line["text"].upper() for line in lines] == ["INVOICE 2024", "TOTAL 12.50"]
    assert set(lines[0]["box"][0]) == {"x", "y"}
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("image", page, filename="page.png", content_type="image/png")
    form.add_field("detect", "true")
    status, upload, _ = call("POST", f"{http_running.http_url}/v1/recognize", data=form)
    assert status == 200 and [line["text"] for line in upload["results"][0]["lines"]] == [x["text"] for x in lines]
