"""The PP-OCRv6 DB text detector: our module against ONNX Runtime, and its maps-to-boxes step on hand-made maps.

Tests that need the wheel's ONNX file (``rapidocr``) or ONNX Runtime skip without them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from crnn.weights import load_verified_weights
from tests.conftest import SHARED_DATA
from textdet import DETECTOR_SPECS, Detector
from textdet.db import DBNet
from textdet.db_boxes import DBThresholds, db_boxes

SPEC = DETECTOR_SPECS["ppocrv6_det_small"]
RECEIPTS = SHARED_DATA / "sroie_receipts_full_part1" / "images"


@pytest.fixture(scope="module")
def module() -> DBNet:
    pytest.importorskip("rapidocr", reason="the PP-OCRv6 detector ships in the rapidocr wheel")
    network = DBNet().eval()
    load_verified_weights(network, SPEC.weights_file(), SPEC.sha256, SPEC.name, "onnx")
    return network


@pytest.fixture(scope="module")
def session():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("rapidocr")
    return ort.InferenceSession(str(SPEC.weights_file()), providers=["CPUExecutionProvider"])


def test_the_map_has_the_input_size() -> None:
    with torch.inference_mode():
        out = DBNet().eval()(torch.zeros(1, 3, 96, 160))
    assert out.shape == (1, 1, 96, 160) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_probabilities_match_onnx_runtime(module: DBNet, session) -> None:
    inputs = [torch.randn(1, 3, 320, 256, generator=torch.Generator().manual_seed(0))]
    detector = Detector("ppocrv6_det_small", device="cpu", precision="fp32")
    for path in sorted(RECEIPTS.glob("*.jpg"))[:2] if RECEIPTS.is_dir() else []:
        inputs.append(detector.network_input(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))[0])
    for x in inputs:
        with torch.inference_mode():
            ours = module(x).numpy()
        theirs = session.run(None, {"x": x.numpy()})[0]
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-4
        with torch.inference_mode():  # as served: channels-last, the detector's own copy
            served = detector.network(x.contiguous(memory_format=torch.channels_last)).numpy()
        assert np.abs(served - theirs).max() <= 1e-4


def test_a_core_grows_back_by_the_unclip_distance() -> None:
    prob = np.zeros((100, 200), np.float32)
    prob[40:50, 50:130] = 0.9  # a shrunk line core, 80 x 10
    ((box, score),) = db_boxes(prob, DBThresholds(dilate=False))
    assert score == pytest.approx(0.9, abs=0.02)
    width, height = np.linalg.norm(box[1] - box[0]), np.linalg.norm(box[3] - box[0])
    grow = 80 * 10 * 1.6 / (2 * (80 + 10))  # area * ratio / perimeter of the core's rectangle (79 x 9 as drawn)
    assert width == pytest.approx(80 + 2 * grow, abs=2.5) and height == pytest.approx(10 + 2 * grow, abs=2.5)
    assert box[0, 0] < box[1, 0] and box[0, 1] < box[3, 1]  # clockwise from the top-left


def test_weak_and_tiny_blobs_are_dropped() -> None:
    prob = np.zeros((100, 200), np.float32)
    prob[10:20, 10:90] = 0.4  # above the binary threshold, below the box score
    prob[60:62, 100:102] = 0.99  # two pixels: noise
    assert db_boxes(prob) == []
    assert len(db_boxes(prob, DBThresholds(box=0.3))) == 1
    with pytest.raises(ValueError, match="2-D"):
        db_boxes(prob[None])
