"""The gRPC service end to end: real stub, real model, loopback only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crnn.runtime import RUNTIMES
from crnn.specs import MODEL_SPECS
from ocr.data.datasets import open_dataset
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from tests.conftest import EXAMPLES, SHARED_DATA, encode
from tests.server.conftest import ServerThread, config, request
from tests.test_preprocess import png_header_only


def real_crops(limit: int = 100) -> list[bytes]:
    """Examples, plus IIIT5K crops when the shared data is present."""
    crops = [s.image for s in open_dataset(EXAMPLES)]
    shared = SHARED_DATA / "iiit5k_test_even_scenes"
    if shared.is_dir():
        crops += [s.image for s in islice(iter(open_dataset(shared)), limit)]
    return crops


def health_status(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service)).status


def test_texts_equal_in_process_reading(stub, fp32_recognizer) -> None:
    crops = real_crops()
    expected = [r.text for r in fp32_recognizer.recognize(crops)]
    response = stub.Recognize(request(*crops, char_details=True), timeout=120)
    assert response.model == "english_g2"
    assert [r.id for r in response.results] == [f"img{i}" for i in range(len(crops))]
    texts = [r.text for r in response.results]
    same = sum(a == b for a, b in zip(texts, expected)) / len(crops)
    assert same >= 0.99
    first = response.results[0]
    assert "".join(c.text for c in first.chars) == first.text and first.chars[0].x_end > first.chars[0].x_start


def test_char_details_off_by_default_and_allowlist(stub) -> None:
    crops = real_crops(0)
    response = stub.Recognize(request(*crops, allowlist="0123456789"), timeout=60)
    assert all(not r.chars and set(r.text) <= set("0123456789") for r in response.results)
    assert response.results[3].text == "7"


def test_200_concurrent_requests_all_answered_correctly(running, fp32_recognizer) -> None:
    crops = real_crops(40)
    expected = [r.text for r in fp32_recognizer.recognize(crops)]
    jobs = [(i % len(crops)) for i in range(200)]

    async def drive() -> list[str]:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            calls = [stub.Recognize(request(crops[j]), timeout=120) for j in jobs]
            return [r.results[0].text for r in await asyncio.gather(*calls)]

    texts = asyncio.run(drive())
    same = sum(t == expected[j] for t, j in zip(texts, jobs)) / len(jobs)
    assert same >= 0.99
    stats = running.server.service.workers["english_g2"].batcher.stats
    assert stats.items / stats.batches > 1.0  # requests really were batched together


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty"),
        (b"garbage bytes", "not a decodable image"),
        (png_header_only(70000, 70000), "over the limit"),
        (png_header_only(20000, 10), "aspect ratio"),
    ],
)
def test_bad_images_are_invalid_argument_naming_the_image(stub, content: bytes, needle: str) -> None:
    good = encode(__import__("numpy").full((20, 60), 255, "uint8"))
    with pytest.raises(grpc.RpcError) as info:
        stub.Recognize(request(good, content), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image 1 (id 'img1')" in info.value.details() and needle in info.value.details()


def test_option_errors(stub) -> None:
    crop = real_crops(0)[0]
    cases = [
        (request(crop, allowlist="abc\u00e9"), grpc.StatusCode.INVALID_ARGUMENT, "alphabet"),
        (request(crop, model="nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
        (request(*[crop] * 513), grpc.StatusCode.INVALID_ARGUMENT, "limit is 512"),
        (request(crop, pattern="[0-9]+("), grpc.StatusCode.INVALID_ARGUMENT, "cannot be compiled"),
        (request(crop, pattern="é+"), grpc.StatusCode.INVALID_ARGUMENT, "matches no text"),
        (request(crop, pattern="a", lexicon=["a"]), grpc.StatusCode.INVALID_ARGUMENT, "not both"),
        (request(crop, beam_width=1000), grpc.StatusCode.INVALID_ARGUMENT, "beam width"),
        (request(crop, min_confidence=1.5), grpc.StatusCode.INVALID_ARGUMENT, "min_confidence"),
    ]
    for req, code, needle in cases:
        with pytest.raises(grpc.RpcError) as info:
            stub.Recognize(req, timeout=30)
        assert info.value.code() == code and needle in info.value.details()
    assert stub.Recognize(request(crop), timeout=30).results[0].text == "HELLO"  # still serving


def test_pattern_and_lexicon_per_request(stub) -> None:
    crops = real_crops(0)  # 02: "A1B2C3", 04: "recognition"
    digits = stub.Recognize(request(crops[2], pattern="[0-9]+"), timeout=30).results[0]
    assert digits.text.isdigit() and digits.unconstrained_text == "A1B2C3"
    assert digits.confidence < digits.unconstrained_confidence
    word = stub.Recognize(request(crops[4], lexicon=["Recondition", "RECOGNITION"], lexicon_ignore_case=True),
                          timeout=30).results[0]
    assert word.text == "RECOGNITION" and word.unconstrained_text == "recognition"
    plain = stub.Recognize(request(crops[2]), timeout=30).results[0]
    assert plain.text == "A1B2C3" and plain.unconstrained_text == ""  # no constraint, no second reading
    sure = stub.Recognize(request(crops[2], min_confidence=plain.confidence - 1e-3), timeout=30).results[0]
    assert not sure.rejected and sure.text == "A1B2C3"
    above = stub.Recognize(request(crops[2], min_confidence=min(1.0, plain.confidence + 1e-3)), timeout=30)
    assert above.results[0].rejected and above.results[0].text == ""


def test_deadline_exceeded(stub) -> None:
    crops = real_crops(100)
    with pytest.raises(grpc.RpcError) as info:
        stub.Recognize(request(*crops), timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_list_models_health_and_reflection(running, stub) -> None:
    listing = stub.ListModels(ocr_pb2.ListModelsRequest(), timeout=10)
    model, *others = listing.models
    assert listing.default_model == model.name == "english_g2" and model.state == "loaded"
    assert model.input_height == 64 and len(model.alphabet) == 96 and len(model.checksum) == 64
    assert "english_g2" in model.source and model.precision == "fp32" and model.runtime in RUNTIMES
    assert model.calibrated and model.fallback == ""  # crnn/calibrations/english_g2.json ships with the package
    # Every other registered model is listed as loadable (a request naming it loads it), without loading it.
    assert {(m.name, m.state) for m in others} >= {(n, "loadable") for n in MODEL_SPECS if n != "english_g2"}
    (ppocr,) = [m for m in others if m.name == "ppocrv6_small"]
    assert ppocr.checksum == MODEL_SPECS["ppocrv6_small"].sha256 and ppocr.alphabet == "" and ppocr.runtime == ""
    assert health_status(running.target) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(running.target, "ocr.v1.Recognizer") == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(running.target) as channel:
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"ocr.v1.Recognizer", "grpc.health.v1.Health"} <= names


def test_queue_full_and_oversized_message(fp32_recognizer) -> None:
    srv = ServerThread(
        config(max_queue_size=4, max_message_bytes=200_000), {"english_g2": fp32_recognizer}
    ).start()
    try:
        with grpc.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            crop = real_crops(0)[0]
            with pytest.raises(grpc.RpcError) as info:
                stub.Recognize(request(*[crop] * 5), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in info.value.details()
            with pytest.raises(grpc.RpcError) as info:
                stub.Recognize(request(b"\0" * 300_000), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.Recognize(request(crop), timeout=30).results[0].text == "HELLO"
    finally:
        srv.stop()


def test_queue_wait_limit_refuses_at_once_and_loses_nothing(fp32_recognizer) -> None:
    """With a limit in seconds of queued work, a burst is answered or refused at once (RESOURCE_EXHAUSTED), never
    dropped; the estimate is a metric. The measured rate is set slow so that a second queued image is over it."""
    srv = ServerThread(config(max_queue_wait_s=1.0), {"english_g2": fp32_recognizer}).start()
    try:
        crop = real_crops(0)[0]
        batcher = srv.server.service.workers["english_g2"].batcher
        batcher.seconds_per_item = 10.0  # as if each image took 10 s: any image queued behind another is over 1 s

        async def burst() -> list[tuple[grpc.StatusCode, str]]:
            async with grpc.aio.insecure_channel(srv.target) as channel:
                stub = ocr_pb2_grpc.RecognizerStub(channel)

                async def one() -> tuple[grpc.StatusCode, str]:
                    try:
                        return grpc.StatusCode.OK, (await stub.Recognize(request(crop), timeout=60)).results[0].text
                    except grpc.aio.AioRpcError as exc:
                        return exc.code(), exc.details() or ""

                return await asyncio.gather(*(one() for _ in range(60)))

        outcomes = asyncio.run(burst())
        answered = [text for code, text in outcomes if code == grpc.StatusCode.OK]
        refused = [text for code, text in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert len(answered) + len(refused) == 60  # nothing lost, no other error
        assert answered and set(answered) == {"HELLO"}
        assert refused and all("s of work, over the limit of 1 s" in t for t in refused)
        exported = srv.server.metrics.registry.get_sample_value("ocr_queue_wait_estimate_seconds",
                                                                {"model": "english_g2"})
        assert exported is not None and exported >= 0
    finally:
        srv.stop()


def test_not_serving_until_models_are_loaded_then_unavailable_while_draining(fp32_recognizer, monkeypatch) -> None:
    release = threading.Event()
    srv = ServerThread(config(), {"english_g2": fp32_recognizer})
    original = srv.server._load

    def slow_load():
        release.wait(60)
        return original()

    monkeypatch.setattr(srv.server, "_load", slow_load)
    srv._thread.start()
    starting = asyncio.run_coroutine_threadsafe(srv.server.start(), srv.loop)
    try:
        while srv.server.port is None or srv.server._server is None:
            threading.Event().wait(0.01)
        srv.port = srv.server.port
        assert health_status(srv.target) == health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Recognize(request(real_crops(0)[0]), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in info.value.details()
            release.set()
            starting.result(60)
            assert health_status(srv.target) == health_pb2.HealthCheckResponse.SERVING
            srv.server.service.draining = True  # the first step of stop(): refuse new work
            with pytest.raises(grpc.RpcError) as info:
                stub.Recognize(request(real_crops(0)[0]), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            srv.server.service.draining = False
    finally:
        release.set()
        srv.stop()


def test_bearer_token_on_every_rpc_but_health(fp32_recognizer) -> None:
    srv = ServerThread(config(token="s3cret"), {"english_g2": fp32_recognizer}).start()
    try:
        crop = real_crops(0)[0]
        with grpc.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            for metadata in (None, [("authorization", "Bearer wrong")]):
                with pytest.raises(grpc.RpcError) as info:
                    stub.Recognize(request(crop), timeout=10, metadata=metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as info:
                list(reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = stub.Recognize(request(crop), timeout=10, metadata=[("authorization", "Bearer s3cret")])
            assert ok.results[0].text == "HELLO"
        assert health_status(srv.target) == health_pb2.HealthCheckResponse.SERVING
    finally:
        srv.stop()


def test_metrics_count_requests_items_and_batches(running, stub) -> None:
    registry = running.server.metrics.registry
    before_items = registry.get_sample_value("ocr_inference_items_total", {"model": "english_g2"}) or 0.0
    ok, invalid = ({"method": "Recognize", "code": c, "protocol": "grpc"} for c in ("OK", "INVALID_ARGUMENT"))
    before_ok = registry.get_sample_value("ocr_requests_total", ok) or 0.0
    stub.Recognize(request(*real_crops(0)), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.Recognize(request(b"junk"), timeout=30)
    assert registry.get_sample_value("ocr_inference_items_total", {"model": "english_g2"}) == before_items + 8
    assert registry.get_sample_value("ocr_requests_total", ok) == before_ok + 1
    assert registry.get_sample_value("ocr_requests_total", invalid) >= 1
    assert registry.get_sample_value("ocr_inference_batches_total", {"model": "english_g2"}) >= 1
    assert registry.get_sample_value("ocr_compute_duration_seconds_count", {"model": "english_g2"}) >= 1


def test_model_named_in_a_request_is_loaded_from_the_models_folder(fp32_recognizer, loaded_model, tmp_path,
                                                                   monkeypatch) -> None:
    from crnn.weights import save_checkpoint

    save_checkpoint(
        tmp_path / "digits" / "model.pt", loaded_model.network, architecture="vgg_bilstm_ctc",
        alphabet=loaded_model.charset.alphabet, input_height=64, normalization=loaded_model.normalization,
        provenance={"name": "digits"},
    )
    (tmp_path / "outside.pt").write_bytes((tmp_path / "digits" / "model.pt").read_bytes())
    monkeypatch.setenv("OCR_MODELS", str(tmp_path / "models-root"))
    (tmp_path / "models-root").mkdir()
    (tmp_path / "models-root" / "digits").symlink_to(tmp_path / "digits")
    srv = ServerThread(config(max_models=2), {"english_g2": fp32_recognizer}).start()
    try:
        with grpc.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            crop = real_crops(0)[0]
            with ThreadPoolExecutor(4) as pool:  # concurrent first requests share one load
                responses = list(pool.map(lambda _: stub.Recognize(request(crop, model="digits"), timeout=60),
                                          range(4)))
            assert {(r.model, r.results[0].text) for r in responses} == {("digits", "HELLO")}
            listed = stub.ListModels(ocr_pb2.ListModelsRequest(), timeout=30)
            states = {m.name: m.state for m in listed.models}
            assert states == {"digits": "loaded", "english_g2": "loaded", "ppocrv6_small": "loadable"}
            (tmp_path / "models-root" / "spare.pt").write_bytes((tmp_path / "outside.pt").read_bytes())
            listed = stub.ListModels(ocr_pb2.ListModelsRequest(), timeout=30)
            assert {m.name: m.state for m in listed.models}["spare"] == "loadable"  # in the folder, not loaded
            (tmp_path / "models-root" / "spare.pt").unlink()
            for name in ("../outside", str(tmp_path / "outside.pt"), "nope"):  # paths never load over gRPC
                with pytest.raises(grpc.RpcError) as info:
                    stub.Recognize(request(crop, model=name), timeout=30)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND, name
            (tmp_path / "models-root" / "more").symlink_to(tmp_path / "digits")
            with pytest.raises(grpc.RpcError) as info:  # a third model is over --max-models 2
                stub.Recognize(request(crop, model="more"), timeout=30)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max-models" in info.value.details()
    finally:
        srv.stop()
