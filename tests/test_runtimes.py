"""Every CPU runtime against our PyTorch module: the same texts, confidences, character positions and constraints."""

from __future__ import annotations

import copy
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from crnn import Recognizer
from crnn.graph import cached_graph, graph_key, recognizer_graph
from crnn.runtime import cpu_kind, resolve_runtime, runtime_installed
from crnn.weights import load_model
from ocr.data.datasets import open_dataset
from tests.conftest import EXAMPLES, SHARED_DATA

ENGINES = [r for r in ("onnxruntime", "openvino") if runtime_installed(r)]
pytestmark = pytest.mark.skipif(not ENGINES, reason="neither onnxruntime nor openvino is installed")
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def crops(limit_per_set: int = 12) -> list[bytes]:
    """The bundled examples, plus the first crops of a few shared sets where ../shared/data is present."""
    images = [p.read_bytes() for p in sorted((EXAMPLES / "images").glob("*.png"))]
    for name in ("iiit5k_test_even_scenes", "openalpr_us_plates_part1", "sroie_receipt_lines_part1"):
        if (SHARED_DATA / name).is_dir():
            images += [s.image for s in islice(iter(open_dataset(SHARED_DATA / name)), limit_per_set)]
    return images


def same_readings(a, b) -> None:
    assert [r.text for r in a] == [r.text for r in b]
    assert [r.confidence for r in a] == pytest.approx([r.confidence for r in b], abs=2e-3)
    assert [[(c.text, c.x_start, c.x_end) for c in r.chars] for r in a] == \
        [[(c.text, c.x_start, c.x_end) for c in r.chars] for r in b]


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return crops()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", ["ppocrv6_small", "english_g2"])
def test_runtime_reads_as_our_module(engine: str, model: str, images: list[bytes], tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CRNN_OCR_CACHE", str(tmp_path))
    loaded = load_model(model)
    torch_reader = Recognizer(loaded, device="cpu", precision="fp32", runtime="torch")
    other = Recognizer(loaded, device="cpu", precision="fp32", runtime=engine)  # type: ignore[arg-type]
    assert other.runtime == engine and other.engine is not None
    same_readings(torch_reader.recognize(images), other.recognize(images))
    same_readings(torch_reader.recognize(images, allowlist=ALNUM), other.recognize(images, allowlist=ALNUM))
    few = images[:: max(1, len(images) // 8)]  # constrained decoding is slower: a spread of 8 or so crops
    lexicon = [line.split("\t")[1] for line in (EXAMPLES / "gt.tsv").read_text().splitlines() if "\t" in line]
    for constraint in (torch_reader.constraint(pattern="[A-Za-z0-9]+"), torch_reader.constraint(beam_width=4),
                       torch_reader.constraint(lexicon=lexicon, ignore_case=True)):
        same_readings(torch_reader.recognize(few, constraint=constraint), other.recognize(few, constraint=constraint))
    assert len(list(tmp_path.rglob("*.onnx"))) == 1  # exported once, into the cache


@pytest.mark.parametrize("engine", ENGINES)
def test_runtime_gives_the_domain_gate_the_same_features(engine: str, tmp_path, monkeypatch) -> None:
    """An adapted model's gate reads the convolutional features: the exported graph returns them too."""
    monkeypatch.setenv("CRNN_OCR_CACHE", str(tmp_path))
    loaded = load_model("english_g2")
    torch_reader = Recognizer(loaded, device="cpu", precision="fp32", runtime="torch")
    other = Recognizer(loaded, device="cpu", precision="fp32", runtime=engine)  # type: ignore[arg-type]
    prepared = torch_reader.prepare_many(crops(10)[:8])
    width = max(torch_reader.padded_width(p.width) for p in prepared)
    logits_a, features_a = torch_reader.forward_features(prepared, width)
    logits_b, features_b = other.forward_features(prepared, width)
    assert torch.allclose(logits_a, logits_b, atol=1e-3)
    np.testing.assert_allclose(features_a, features_b, rtol=1e-3, atol=1e-3)


def test_graph_cache_is_keyed_by_the_weights(tmp_path: Path) -> None:
    network = load_model("english_g2").network
    first = cached_graph(recognizer_graph(network, 1, 64), tmp_path)
    mtime = first.stat().st_mtime_ns
    assert cached_graph(recognizer_graph(network, 1, 64), tmp_path) == first
    assert first.stat().st_mtime_ns == mtime  # the same weights: the same file, not exported again
    changed = copy.deepcopy(network)
    with torch.no_grad():
        changed.Prediction.bias.zero_()  # the head is not in the graph, but any weight change is a new key
    assert graph_key(recognizer_graph(changed, 1, 64)) != graph_key(recognizer_graph(network, 1, 64))
    with torch.no_grad():
        changed.FeatureExtraction.ConvNet[0].bias.add_(1.0)
    assert cached_graph(recognizer_graph(changed, 1, 64), tmp_path) != first


def test_runtime_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu, "fp32") in ENGINES  # an installed engine beats torch at fp32
    assert resolve_runtime("auto", cpu, "int8") == "torch"
    assert resolve_runtime("auto", cpu, "bf16") == "torch"
    assert resolve_runtime("auto", cuda, "fp32") == "torch"
    assert resolve_runtime("torch", cpu, "fp32") == "torch"
    with pytest.raises(ValueError, match="unknown runtime"):
        resolve_runtime("tensorrt", cpu, "fp32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_runtime(ENGINES[0], cuda, "fp32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="int8 runs on --runtime torch"):
        resolve_runtime(ENGINES[0], cpu, "int8")  # type: ignore[arg-type]


def test_cpu_kind_from_flags() -> None:
    assert cpu_kind(frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})) == "amx"
    assert cpu_kind(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "avx512_bf16"
    assert cpu_kind(frozenset({"avx2", "avx512f", "avx512_vnni"})) == "avx512"
    assert cpu_kind(frozenset({"avx2", "fma"})) == "avx2"
    assert cpu_kind(frozenset({"sse4_2"})) == "baseline"
    assert cpu_kind() in ("amx", "avx512_bf16", "avx512", "avx2", "baseline")


def test_auto_falls_back_to_torch_when_the_graph_cannot_run(monkeypatch) -> None:
    """An export or compile failure under ``auto`` warns and reads on PyTorch; an explicit runtime raises it."""
    import crnn.runtime

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(crnn.runtime, "open_engine", broken)
    loaded = load_model("english_g2")
    with pytest.warns(RuntimeWarning, match="disk full"):
        reader = Recognizer(loaded, device="cpu", precision="fp32", runtime="auto")
    assert reader.runtime == "torch" and reader.engine is None
    assert reader.recognize([(EXAMPLES / "images" / "00.png").read_bytes()])[0].text == "HELLO"
    with pytest.raises(OSError, match="disk full"):
        Recognizer(loaded, device="cpu", precision="fp32", runtime=ENGINES[0])  # type: ignore[arg-type]
