"""int8 inference (PyTorch, shipped ranges) and ``ocr export`` to ONNX (fp32 and int8), checked against fp32."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from crnn import Recognizer
from crnn.quantize import fit_stats, load_stats, quantized_network, save_stats, stats_path
from crnn.runtime import resolve_precision
from crnn.weights import LoadedModel
from ocr.cli import main
from ocr.data.datasets import open_dataset
from tests.conftest import EXAMPLES, shared_set

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
from ocr.commands.export import ExportConfig, OnnxNetwork, run_export  # noqa: E402

#: Largest |logit| difference accepted between ONNX Runtime fp32 and PyTorch fp32 (logits span about +-30).
FP32_TOLERANCE = 1e-3


def example_images() -> list[bytes]:
    return [s.image for s in open_dataset(EXAMPLES)]  # type: ignore[misc]


def batches(recognizer: Recognizer, images: list[bytes]):
    """The recogniser's own width-bucketed batches: (prepared images, input tensor)."""
    prepared = recognizer.prepare_many(images)
    for rows, tensor in recognizer.input_batches(prepared):
        yield [prepared[i] for i in rows], tensor


@pytest.fixture(scope="module")
def int8_recognizer(loaded_model: LoadedModel) -> Recognizer:
    return Recognizer(loaded_model, device="cpu", precision="int8")


def test_int8_reads_the_examples_like_fp32(recognizer: Recognizer, int8_recognizer: Recognizer) -> None:
    images = example_images()
    assert int8_recognizer.precision == "int8"
    assert [r.text for r in int8_recognizer.recognize(images)] == [r.text for r in recognizer.recognize(images)]


def test_int8_ranges_belong_to_their_weights(loaded_model: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fitted for other weights"):
        load_stats(stats_path("english_g2"), "0" * 64)
    stats = load_stats(stats_path("english_g2"), loaded_model.sha256)
    with pytest.raises(ValueError, match="do not fit this network"):
        quantized_network(loaded_model.network, dict(list(stats.items())[:-1]), 64)


def test_fitted_ranges_round_trip_and_run(recognizer: Recognizer, loaded_model: LoadedModel, tmp_path: Path) -> None:
    tensors = [t for _, t in batches(recognizer, example_images())]
    stats = fit_stats(loaded_model.network, tensors)
    path = tmp_path / "ranges.pt"
    save_stats(stats, loaded_model.sha256, path)
    network = quantized_network(loaded_model.network, load_stats(path, loaded_model.sha256), 64)
    with torch.inference_mode():
        out = network(tensors[0])
        ref = loaded_model.network(tensors[0])
    assert out.shape == ref.shape
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9  # int8 on 8 clean crops: nearly the same path


def test_precision_rules(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    import crnn.quantize as quantize

    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: True)
    assert resolve_precision("auto", cpu, bf16_validated=True, int8_validated=True) == "int8"
    assert resolve_precision("auto", cpu, bf16_validated=False, int8_validated=False) == "fp32"
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: False)
    assert resolve_precision("auto", cpu, bf16_validated=False, int8_validated=True) == "fp32"  # no VNNI: no gain
    assert resolve_precision("int8", cpu, bf16_validated=False) == "int8"  # by hand, still allowed
    with pytest.raises(ValueError, match="CPU only"):
        resolve_precision("int8", cuda, bf16_validated=True)


def test_int8_needs_shipped_ranges(loaded_model: LoadedModel) -> None:
    adapted = LoadedModel(
        name="my_adapted", network=loaded_model.network, charset=loaded_model.charset,
        input_height=loaded_model.input_height, normalization=loaded_model.normalization, source="test",
        sha256="f" * 64,
    )
    with pytest.raises(ValueError, match="no int8 activation ranges"):
        Recognizer(adapted, device="cpu", precision="int8")
    assert Recognizer(adapted, device="cpu", precision="auto").precision in ("fp32", "bf16")


@pytest.fixture(scope="module")
def onnx_fp32(tmp_path_factory) -> Path:
    return run_export(ExportConfig("english_g2", tmp_path_factory.mktemp("onnx") / "english_g2.onnx"))


def test_onnx_export_matches_pytorch(recognizer: Recognizer, onnx_fp32: Path) -> None:
    graph = OnnxNetwork(onnx_fp32, threads=2)
    assert graph.metadata["alphabet"] == recognizer.charset.alphabet
    assert graph.metadata["input_height"] == "64" and graph.metadata["blank_index"] == "0"
    assert graph.metadata["weights_sha256"] == recognizer.model.sha256
    widths = set()
    for _ims, tensor in batches(recognizer, example_images()):
        with torch.inference_mode():
            ref = recognizer.network(tensor).numpy()
        out = graph(tensor.numpy())
        widths.add(tensor.shape[-1])
        assert out.shape == ref.shape  # dynamic batch and width
        assert np.abs(out - ref).max() < FP32_TOLERANCE
    assert len(widths) > 1


def test_onnx_int8_export_reads_the_examples(recognizer: Recognizer, tmp_path: Path, capsys) -> None:
    out = tmp_path / "int8.onnx"
    assert main(["export", "--model", "english_g2", "--out", str(out), "--int8", "--calibration", str(EXAMPLES)]) == 0
    assert "int8" in capsys.readouterr().out
    graph = OnnxNetwork(out)
    assert graph.metadata["precision"].startswith("int8")
    agree = total = 0
    for _ims, tensor in batches(recognizer, example_images()):
        with torch.inference_mode():
            ref = recognizer.network(tensor).argmax(-1).numpy()
        agree += int((graph(tensor.numpy()).argmax(-1) == ref).sum())
        total += ref.size
    assert agree / total > 0.95


def test_export_option_errors(tmp_path: Path, capsys) -> None:
    assert main(["export", "--out", str(tmp_path / "m.onnx"), "--calibration", str(EXAMPLES)]) == 2
    assert "--calibration only applies with --int8" in capsys.readouterr().err
    assert main(["export", "--out", str(tmp_path / "m.onnx"), "--model", "no_such_model"]) == 2
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_texts_equal_pytorch_on_a_shared_set(recognizer: Recognizer, onnx_fp32: Path) -> None:
    images = [s.image for s in islice(iter(open_dataset(shared_set("iiit5k_test_even_scenes"))), 300)]
    graph = OnnxNetwork(onnx_fp32, threads=2)
    for _ims, tensor in batches(recognizer, images):
        with torch.inference_mode():
            ref = recognizer.network(tensor).numpy()
        out = graph(tensor.numpy())
        assert np.abs(out - ref).max() < FP32_TOLERANCE
        assert (out.argmax(-1) == ref.argmax(-1)).all()  # same greedy path, so the same texts
