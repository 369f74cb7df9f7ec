"""``ocr serve --collect``: low-confidence crops land in a label folder as drafts, with a cap, and nothing else."""

from __future__ import annotations

import grpc

from ocr.label.store import LabelStore
from ocr.v1 import ocr_pb2_grpc
from server.config import ServerConfig
from tests.server.conftest import ServerThread, config, named_crops, request


def test_collects_low_confidence_crops_once_up_to_the_cap(tmp_path, fp32_recognizer) -> None:
    folder = tmp_path / "collected"
    crops = [data for _, data in named_crops(4)]
    srv = ServerThread(config(collect_dir=folder, collect_below=1.0, collect_max=3),
                       {"english_g2": fp32_recognizer}).start()
    try:
        with grpc.insecure_channel(srv.target) as channel:
            stub = ocr_pb2_grpc.RecognizerStub(channel)
            first = stub.Recognize(request(crops[0], crops[1]), timeout=60)
            stub.Recognize(request(crops[0]), timeout=60)  # the same image again: kept once
            stub.Recognize(request(crops[2], crops[3]), timeout=60)  # one over the cap
    finally:
        srv.stop()  # finishes the saves queued
    rows = LabelStore(folder).rows()
    assert len(rows) == 3
    assert all(row.status == "draft" and row.source == "ocr serve" and row.model == "english_g2"
               for row in rows.values())
    by_bytes = {(folder / name).read_bytes(): row for name, row in rows.items()}
    assert set(by_bytes) <= set(crops) and crops[0] in by_bytes and crops[1] in by_bytes
    assert by_bytes[crops[0]].reading == first.results[0].text
    assert abs(by_bytes[crops[0]].confidence - first.results[0].confidence) < 1e-3


def test_confident_readings_are_not_collected(tmp_path, fp32_recognizer) -> None:
    folder = tmp_path / "collected"
    srv = ServerThread(config(collect_dir=folder, collect_below=0.0), {"english_g2": fp32_recognizer}).start()
    try:
        with grpc.insecure_channel(srv.target) as channel:
            ocr_pb2_grpc.RecognizerStub(channel).Recognize(request(named_crops(1)[0][1]), timeout=60)
    finally:
        srv.stop()
    assert LabelStore(folder).rows() == {}


def test_ray_refuses_collect(tmp_path) -> None:
    import pytest

    from server.config import check_servable_on_ray

    with pytest.raises(ValueError, match="--collect"):
        check_servable_on_ray(ServerConfig(port=50051, collect_dir=tmp_path))
