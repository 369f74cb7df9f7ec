"""HTTP/JSON beside gRPC: same texts, same limits, JSON errors with the documented statuses, health and metrics."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.errors import HTTP_STATUS, RequestError
from server.http_api import request_from_form, request_from_json
from server.openapi import openapi_spec
from tests.server.conftest import ServerThread, config, named_crops

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def http_server(fp32_recognizer) -> Iterator[ServerThread]:
    srv = ServerThread(config(http_port=0, max_message_bytes=1 << 20),
                       {"english_g2": fp32_recognizer}).start()
    yield srv
    srv.stop()


def call(method: str, url: str, **kwargs) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request; returns (status, JSON body or text, headers)."""

    async def go():
        async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                body = json.loads(text)
            except json.JSONDecodeError:
                body = text
            return response.status, body, dict(response.headers)

    return asyncio.run(go())


def json_request(*crops: tuple[str, bytes], **fields) -> dict[str, Any]:
    images = [{"content": base64.b64encode(data).decode(), "id": name} for name, data in crops]
    return {"images": images, **fields}


def grpc_results(target: str, crops: list[tuple[str, bytes]], **fields) -> list[ocr_pb2.Recognition]:
    with grpc.insecure_channel(target) as channel:
        images = [ocr_pb2.Image(content=data, id=name) for name, data in crops]
        request = ocr_pb2.RecognizeRequest(images=images, **fields)
        return list(ocr_pb2_grpc.RecognizerStub(channel).Recognize(request, timeout=120).results)


def test_same_readings_over_http_and_grpc(http_server) -> None:
    crops = named_crops(50)
    expected = grpc_results(http_server.target, crops, char_details=True)
    status, body, _ = call("POST", f"{http_server.http_url}/v1/recognize", json=json_request(*crops, char_details=True))
    assert status == 200, body
    results = body["results"]
    assert body["model"] == "english_g2"
    assert [r["id"] for r in results] == [r.id for r in expected]
    assert [r["text"] for r in results] == [r.text for r in expected]
    assert [r["confidence"] for r in results] == pytest.approx([r.confidence for r in expected], abs=1e-6)
    assert [[c["x_start"] for c in r["chars"]] for r in results] == [[c.x_start for c in r.chars] for r in expected]


def test_multipart_upload_matches_json(http_server) -> None:
    crops = [(name.rsplit("/", 1)[-1], data) for name, data in named_crops(3)]  # file names, no folders
    form = aiohttp.FormData()
    for name, data in crops:
        form.add_field("image", data, filename=name, content_type="application/octet-stream")
    form.add_field("allowlist", "abcdefghijklmnopqrstuvwxyz")
    form.add_field("char_details", "true")
    status, body, _ = call("POST", f"{http_server.http_url}/v1/recognize", data=form)
    assert status == 200, body
    expected = grpc_results(http_server.target, crops, allowlist="abcdefghijklmnopqrstuvwxyz", char_details=True)
    assert [(r["id"], r["text"]) for r in body["results"]] == [(r.id, r.text) for r in expected]
    assert all(r["chars"] for r in body["results"] if r["text"])


def test_constraint_fields_travel_over_http(http_server) -> None:
    (crop,) = named_crops(1)
    fields = {"lexicon": ["alpha", "beta"], "lexiconIgnoreCase": True, "min_confidence": 0.0}
    status, body, _ = call("POST", f"{http_server.http_url}/v1/recognize", json=json_request(crop, **fields))
    assert status == 200, body
    expected = grpc_results(http_server.target, [crop], lexicon=["alpha", "beta"], lexicon_ignore_case=True)[0]
    result = body["results"][0]
    assert result["text"] == expected.text and result["text"].lower() in ("alpha", "beta")
    assert result["unconstrained_text"] == expected.unconstrained_text


def _oversized_json() -> bytes:
    return json.dumps(json_request(("big", b"\0" * (1 << 20)))).encode()


BAD_INPUTS = [
    ("invalid JSON", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "INVALID_ARGUMENT",
     "not valid JSON"),
    ("not an object", {"json": [1, 2]}, 400, "INVALID_ARGUMENT", "JSON object"),
    ("bad base64", {"json": {"images": [{"content": "%%%", "id": "x"}]}}, 400, "INVALID_ARGUMENT", "base64"),
    ("not an image", {"json": json_request(("x", b"hello, not an image"))}, 400, "INVALID_ARGUMENT",
     "not a decodable image"),
    ("unknown field", {"json": {"images": [], "colour": "red"}}, 400, "INVALID_ARGUMENT", "colour"),
    ("wrong field type", {"json": {"beam_width": "wide"}}, 400, "INVALID_ARGUMENT", "beam_width"),
    ("bad pattern", {"json": json_request(("x", b"x"), pattern="([")}, 400, "INVALID_ARGUMENT", "pattern"),
    ("too many images", {"json": json_request(*[("x", b"x")] * 513)}, 400, "INVALID_ARGUMENT", "the limit is 512"),
    ("unknown model", {"json": {"images": [], "model": "no_such_model"}}, 404, "NOT_FOUND", "no_such_model"),
    ("body over the limit", {"data": _oversized_json(), "headers": {"Content-Type": "application/json"}}, 413,
     "RESOURCE_EXHAUSTED", "over the limit"),
    ("wrong content type", {"data": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "INVALID_ARGUMENT",
     "application/json"),
    ("bad timeout header", {"json": {"images": []}, "headers": {"X-Request-Timeout": "soon"}}, 400,
     "INVALID_ARGUMENT", "X-Request-Timeout"),
]


@pytest.mark.parametrize(("case", "kwargs", "status", "code", "words"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_its_status_and_a_json_error(http_server, case, kwargs, status, code, words) -> None:
    got, body, headers = call("POST", f"{http_server.http_url}/v1/recognize", **kwargs)
    assert got == status, body
    assert headers["Content-Type"].startswith("application/json")
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]
    assert call("GET", f"{http_server.http_url}/readyz")[0] == 200
    with grpc.insecure_channel(http_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_timeout_that_passes_before_compute_gets_504(http_server) -> None:
    (crop,) = named_crops(1)
    status, body, _ = call("POST", f"{http_server.http_url}/v1/recognize", json=json_request(crop),
                           headers={"X-Request-Timeout": "0.000001"})  # spent before the batch can run
    assert (status, body["error"]["code"]) == (504, "DEADLINE_EXCEEDED")
    status, _, _ = call("POST", f"{http_server.http_url}/v1/recognize", json=json_request(crop),
                        headers={"X-Request-Timeout": "60"})
    assert status == 200


def test_unknown_paths_and_methods_get_json_errors(http_server) -> None:
    status, body, _ = call("GET", f"{http_server.http_url}/v2/nothing")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    status, body, _ = call("DELETE", f"{http_server.http_url}/v1/models")
    assert (status, body["error"]["code"]) == (405, "UNIMPLEMENTED")


def test_models_health_metrics_openapi_and_page(http_server) -> None:
    url = http_server.http_url
    status, body, _ = call("GET", f"{url}/v1/models")
    assert status == 200 and body["default_model"] == "english_g2"
    assert body["models"][0]["name"] == "english_g2" and body["models"][0]["calibrated"] is True
    assert call("GET", f"{url}/healthz")[:2] == (200, {"status": "alive"})
    assert call("GET", f"{url}/readyz")[:2] == (200, {"status": "SERVING"})
    call("POST", f"{url}/v1/recognize", json=json_request(*named_crops(1)))
    status, text, headers = call("GET", f"{url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'ocr_requests_total{code="OK",method="Recognize",protocol="http"}' in text
    status, spec, _ = call("GET", f"{url}/openapi.json")
    assert status == 200 and "/v1/recognize" in spec["paths"]
    status, page, headers = call("GET", f"{url}/")
    assert status == 200 and '<script src="/static/app.js"' in page
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for asset in ("app.js", "style.css"):
        assert call("GET", f"{url}/static/{asset}")[0] == 200


def test_openapi_schema_follows_the_proto() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for message in (ocr_pb2.RecognizeRequest, ocr_pb2.Recognition, ocr_pb2.ModelInfo):
        assert set(schemas[message.DESCRIPTOR.name]["properties"]) == set(message.DESCRIPTOR.fields_by_name)
    assert schemas["RecognizeRequest"]["properties"]["lexicon"] == {"type": "array", "items": {"type": "string"}}
    assert schemas["Image"]["properties"]["content"]["contentEncoding"] == "base64"


def test_every_status_the_contract_sends_has_an_http_status() -> None:
    for code in grpc.StatusCode:
        if code.name in {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
                         "UNAVAILABLE", "UNAUTHENTICATED", "INTERNAL", "CANCELLED"}:
            assert 200 <= HTTP_STATUS[code] < 600
    assert len(set(HTTP_STATUS.values())) == len(HTTP_STATUS)  # one HTTP status per gRPC code


def test_request_parsers_name_the_problem() -> None:
    request = request_from_json(b'{"images": [{"content": "aGk", "id": "a"}], "beamWidth": 4}')
    assert request.images[0].content == b"hi" and request.beam_width == 4  # unpadded base64, camelCase names
    assert request_from_json(b'{"images": [{"content": "-_8"}]}').images[0].content == b"\xfb\xff"  # URL-safe
    with pytest.raises(RequestError, match=r"images\[0\] must be an object"):
        request_from_json(b'{"images": ["abc"]}')
    form = {"lexicon": "one\ntwo", "char_details": "true", "min_confidence": "0.5"}
    request = request_from_form(form)
    assert list(request.lexicon) == ["one", "two"] and request.char_details and request.min_confidence == 0.5
    with pytest.raises(RequestError, match="expected true or false"):
        request_from_form({"char_details": "maybe"})
    with pytest.raises(RequestError, match="unknown form field 'images'"):
        request_from_form({"images": "abc"})


def test_token_guards_the_api_but_not_health_or_the_page(fp32_recognizer) -> None:
    srv = ServerThread(config(http_port=0, token=TOKEN), {"english_g2": fp32_recognizer}).start()
    try:
        url = srv.http_url
        status, body, _ = call("GET", f"{url}/v1/models")
        assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")
        status, body, _ = call("POST", f"{url}/v1/recognize", json={"images": []},
                               headers={"Authorization": "Bearer wrong"})
        assert status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert call("GET", f"{url}/v1/models", headers=auth)[0] == 200
        status, body, _ = call("POST", f"{url}/v1/recognize", json=json_request(*named_crops(1)), headers=auth)
        assert status == 200 and len(body["results"]) == 1
        for path in ("/healthz", "/readyz", "/", "/static/app.js", "/openapi.json", "/metrics"):
            assert call("GET", f"{url}{path}")[0] == 200, path
    finally:
        srv.stop()


def test_draining_server_says_not_ready_and_refuses_new_work(fp32_recognizer) -> None:
    srv = ServerThread(config(http_port=0), {"english_g2": fp32_recognizer}).start()
    try:
        srv.server.service.draining = True  # what stop() sets first
        status, body, headers = call("GET", f"{srv.http_url}/readyz")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE") and headers["Retry-After"] == "1"
        status, body, _ = call("POST", f"{srv.http_url}/v1/recognize", json=json_request(*named_crops(1)))
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE")
        srv.server.service.draining = False
    finally:
        srv.stop()
