"""Weight loading: checksums, strictness, prefixes, self-describing checkpoints, model names."""

from __future__ import annotations

import copy
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crnn import MODEL_SPECS, Recognizer
from crnn.errors import UnknownModelError, WeightsError
from crnn.gate import DomainGate
from crnn.specs import ModelSpec
from crnn.weights import (
    find_model_file,
    load_checkpoint,
    load_model,
    load_registered,
    save_checkpoint,
    sha256_file,
    strip_module_prefix,
)
from tests.conftest import example_bytes


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_every_registered_model_loads_strictly_with_its_checksum(name: str) -> None:
    spec: ModelSpec = MODEL_SPECS[name]
    if spec.weights_format == "onnx":
        pytest.importorskip("rapidocr", reason="its weights ship in the rapidocr wheel")
    path = spec.weights_file()
    assert sha256_file(path) == spec.sha256
    network = spec.build()
    if spec.weights_format == "torch":
        raw = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(strip_module_prefix(raw), strict=True)
    assert sum(p.numel() for p in network.parameters()) > 0
    loaded = load_model(name)
    logits = loaded.network(torch.zeros(1, loaded.normalization.channels, loaded.input_height, 64))
    assert loaded.charset.num_classes == logits.shape[-1]


def test_english_g2_facts(loaded_model) -> None:
    assert sum(p.numel() for p in loaded_model.network.parameters()) == 3_781_345
    assert loaded_model.charset.num_classes == 97 and loaded_model.input_height == 64
    logits = loaded_model.network(torch.zeros(1, 1, 64, 256))
    assert logits.shape == (1, 63, 97)


def test_checksum_mismatch_is_refused_naming_file_and_both_hashes(tmp_path: Path) -> None:
    spec = MODEL_SPECS["english_g2"]
    bad = tmp_path / "english_g2.pth"
    shutil.copy(spec.weights_file(), bad)
    with open(bad, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(WeightsError) as info:
        load_registered(spec, bad)
    message = str(info.value)
    assert str(bad) in message and spec.sha256 in message and sha256_file(bad) in message


def test_weights_env_variable_is_checked_too(tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "other.pth"
    torch.save({"x": torch.zeros(1)}, other)
    monkeypatch.setenv("OCR_WEIGHTS", str(other))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_model("english_g2")


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_registered(MODEL_SPECS["english_g2"], tmp_path / "nope.pth")


def test_strict_loading_rejects_wrong_architecture(tmp_path: Path, loaded_model) -> None:
    path = save_checkpoint(
        tmp_path / "m.pt", loaded_model.network, architecture="vgg_bilstm_ctc", alphabet="0123456789",
        input_height=64, normalization=loaded_model.normalization, provenance={"name": "digits"},
    )
    with pytest.raises(WeightsError, match="do not fit"):
        load_checkpoint(path)


def test_checkpoint_round_trip_reads_the_same(tmp_path: Path, loaded_model) -> None:
    path = save_checkpoint(
        tmp_path / "models" / "plates" / "model.pt", loaded_model.network, architecture="vgg_bilstm_ctc",
        alphabet=loaded_model.charset.alphabet, input_height=64, normalization=loaded_model.normalization,
        provenance={"name": "plates", "base_sha256": loaded_model.sha256}, metrics={"loose": 0.5},
    )
    assert not list(path.parent.glob(".*tmp"))  # no temp file left behind
    again = load_model("plates", directory=tmp_path / "models")
    assert again.name == "plates" and again.metadata["metrics"] == {"loose": 0.5}
    assert again.metadata["provenance"]["base_sha256"] == loaded_model.sha256
    image = example_bytes(0)
    base = Recognizer(loaded_model, device="cpu", precision="fp32").recognize([image])[0]
    copy = Recognizer(again, device="cpu", precision="fp32").recognize([image])[0]
    # A checkpoint reports the raw score; the registered model its calibrated confidence (and the raw one beside).
    assert copy.text == base.text and copy.confidence == pytest.approx(base.raw_confidence, abs=1e-5)
    assert copy.raw_confidence is None and base.confidence != base.raw_confidence


def test_checkpoint_keeps_its_framing_and_reads_as_the_framed_image(tmp_path: Path, loaded_model) -> None:
    path = save_checkpoint(
        tmp_path / "framed.pt", loaded_model.network, architecture="vgg_bilstm_ctc",
        alphabet=loaded_model.charset.alphabet, input_height=64, normalization=loaded_model.normalization,
        provenance={"name": "framed"}, row_crop=0.25,
    )
    framed = load_checkpoint(path)
    assert framed.row_crop == 0.25
    recognizer = Recognizer(framed, device="cpu", precision="fp32")
    # A line with a line of half its height above and below (a plate's state name and slogan): framed, only the
    # middle line is read.
    from ocr.adapt.render import Renderer  # only this test renders
    from ocr.fonts import find_fonts

    renderer = Renderer(find_fonts("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), [], 0)
    middle = renderer.render("7AB1234")
    h, w = middle.shape
    outer = [cv2.resize(renderer.render(t), (w, h // 2)) for t in ("WWWWW", "MMMMM")]
    stacked = np.vstack([outer[0], middle, outer[1]])
    prepared = recognizer.prepare(stacked)
    assert prepared.pixels.shape[0] == 128  # prepared taller, so the kept band is not upscaled
    assert recognizer.at_own_height(prepared).pixels.shape[0] == 64
    read_framed = recognizer.recognize([stacked])[0].text
    assert read_framed.replace(" ", "") == "7AB1234"
    assert Recognizer(again_unframed(path), device="cpu", precision="fp32").recognize([stacked])[0].text != read_framed
    # An exported graph cannot frame its inputs itself: its metadata tells the client how.
    from ocr.commands.export import metadata  # noqa: I001

    assert metadata(framed, int8=False)["row_crop"] == "0.25"
    assert "row_crop" not in metadata(loaded_model, int8=False)
    # Checkpoints written before framing existed read unframed.
    payload = torch.load(path, weights_only=False)
    del payload["row_crop"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").row_crop == 0.0


def again_unframed(path: Path):
    model = load_checkpoint(path)
    model.row_crop = 0.0
    return model


def test_checkpoint_keeps_the_case_it_writes(tmp_path: Path, loaded_model) -> None:
    path = save_checkpoint(
        tmp_path / "caps.pt", loaded_model.network, architecture="vgg_bilstm_ctc",
        alphabet=loaded_model.charset.alphabet, input_height=64, normalization=loaded_model.normalization,
        provenance={"name": "caps"}, case="upper",
    )
    again = load_checkpoint(path)
    assert again.charset.case == "upper"
    image = example_bytes(4)  # "recognition", printed in lower case
    base = Recognizer(loaded_model, device="cpu", precision="fp32").recognize([image])[0]
    caps = Recognizer(again, device="cpu", precision="fp32").recognize([image])[0]
    assert base.text == "recognition" and caps.text == "RECOGNITION"


def test_checkpoint_falls_back_on_the_pretrained_model_where_unsure(tmp_path: Path, loaded_model) -> None:
    broken = copy.deepcopy(loaded_model.network)
    with torch.no_grad():  # every frame uniform over the classes: confidence near zero
        broken.Prediction.weight.zero_()
        broken.Prediction.bias.zero_()
    common = dict(architecture="vgg_bilstm_ctc", alphabet=loaded_model.charset.alphabet, input_height=64,
                  normalization=loaded_model.normalization, provenance={}, case="upper")
    alone = load_checkpoint(save_checkpoint(tmp_path / "alone.pt", broken, **common))
    path = save_checkpoint(tmp_path / "paired.pt", broken, fallback=loaded_model, fallback_below=0.95, **common)
    paired = load_checkpoint(path)
    assert alone.fallback is None and paired.fallback is not None and paired.fallback.below == 0.95
    image = example_bytes(4)  # "recognition"
    unsure = Recognizer(alone, device="cpu", precision="fp32").recognize([image])[0]
    assert unsure.text != "RECOGNITION" and unsure.confidence < 0.5
    read = Recognizer(paired, device="cpu", precision="fp32").recognize([image])[0]
    assert read.text == "RECOGNITION"  # the fallback's reading, in the adapted model's case
    payload = torch.load(path, weights_only=True)
    payload["fallback"]["sha256"] = "0" * 64
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="refusing to pair"):
        load_checkpoint(path)


def _constant_gate(logit: float) -> DomainGate:
    """A gate giving every line ``p = sigmoid(logit)``: inside the domain at the usual threshold 0.5 when
    ``logit > 0``, outside when ``logit < 0``."""
    zeros = np.zeros(512)
    return DomainGate(zeros, np.ones(512), zeros, logit)


def _sure_reader(loaded_model, char: str = "") -> tuple[torch.nn.Module, dict]:
    """A network that reads ``char`` in every line (nothing by default), and is sure of it (confidence 1), with the
    checkpoint fields that pair it with the pretrained model."""
    broken = copy.deepcopy(loaded_model.network)
    with torch.no_grad():
        broken.Prediction.weight.zero_()
        broken.Prediction.bias.zero_()
        broken.Prediction.bias[loaded_model.charset.encode(char)[0] if char else 0] = 50.0
    common = dict(architecture="vgg_bilstm_ctc", alphabet=loaded_model.charset.alphabet, input_height=64,
                  normalization=loaded_model.normalization, provenance={}, case="upper", fallback=loaded_model)
    return broken, common


def test_a_gated_checkpoint_routes_lines_outside_its_domain_to_the_pretrained_model(
    tmp_path: Path, loaded_model
) -> None:
    broken, common = _sure_reader(loaded_model)  # reads nothing
    image = example_bytes(4)  # "recognition"
    texts = {}
    for name, logit in (("inside", 10.0), ("outside", -10.0)):
        model = load_checkpoint(save_checkpoint(tmp_path / f"{name}.pt", broken, gate=_constant_gate(logit), **common))
        assert model.fallback is not None and model.fallback.gate is not None
        assert model.fallback.gate.intercept == logit
        texts[name] = Recognizer(model, device="cpu", precision="fp32").recognize([image])[0].text
    # Inside the domain the adapted (blank, confident) reading stands: no confidence rule overrides the gate.
    assert texts == {"inside": "", "outside": "RECOGNITION"}
    payload = torch.load(tmp_path / "inside.pt", weights_only=True)
    payload["fallback"]["gate"]["coef"] = [0.0, 1.0]  # not the length of the mean
    torch.save(payload, tmp_path / "inside.pt")
    with pytest.raises(WeightsError, match="domain gate is malformed"):
        load_checkpoint(tmp_path / "inside.pt")
    # The threshold travels with the checkpoint; one saved before it existed reads as 0.5.
    strict = replace(_constant_gate(1.0), threshold=0.9)  # p = 0.73: outside at 0.9
    model = load_checkpoint(save_checkpoint(tmp_path / "strict.pt", broken, gate=strict, **common))
    assert model.fallback is not None and model.fallback.gate is not None and model.fallback.gate.threshold == 0.9
    assert Recognizer(model, device="cpu", precision="fp32").recognize([image])[0].text == "RECOGNITION"
    payload = torch.load(tmp_path / "strict.pt", weights_only=True)
    del payload["fallback"]["gate"]["threshold"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.fallback is not None and old.fallback.gate is not None and old.fallback.gate.threshold == 0.5
    assert Recognizer(old, device="cpu", precision="fp32").recognize([image])[0].text == ""  # inside at 0.5
    payload["fallback"]["gate"]["threshold"] = 1.5
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="domain gate is malformed"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="needs a fallback"):
        save_checkpoint(tmp_path / "x.pt", broken, gate=_constant_gate(1.0),
                        **{k: v for k, v in common.items() if k != "fallback"})


def test_a_gate_keeps_the_adapted_reading_of_a_line_outside_only_when_it_is_surer_by_the_margin(
    tmp_path: Path, loaded_model
) -> None:
    x_reader, common = _sure_reader(loaded_model, "X")  # reads "X" in every line
    image = example_bytes(6)  # "$19.99": the pretrained model reads it, less than fully sure
    pretrained = Recognizer(loaded_model, device="cpu", precision="fp32", calibrated=False).recognize([image])[0]
    assert pretrained.text == "$19.99" and pretrained.confidence < 0.99
    outside = _constant_gate(-10.0)
    texts = {}
    gap = 1.0 - pretrained.confidence  # how much surer the adapted reading (confidence 1) is
    for margin in (None, 0.0, gap - 0.005, gap + 0.005):
        gate = replace(outside, override_margin=margin)
        model = load_checkpoint(save_checkpoint(tmp_path / f"m{margin}.pt", x_reader, gate=gate, **common))
        assert model.fallback is not None and model.fallback.gate is not None
        assert model.fallback.gate.override_margin == margin
        texts[margin] = Recognizer(model, device="cpu", precision="fp32").recognize([image])[0].text
    # The adapted reading is kept while it is surer by more than the margin, and only then.
    assert list(texts.values()) == ["$19.99", "X", "X", "$19.99"]
    # An empty reading is never kept, however sure: it says nothing about the line's text.
    blank_reader, _ = _sure_reader(loaded_model)
    blank = load_checkpoint(save_checkpoint(tmp_path / "blank.pt", blank_reader,
                                            gate=replace(outside, override_margin=0.0), **common))
    assert Recognizer(blank, device="cpu", precision="fp32").recognize([image])[0].text == "$19.99"
    # A checkpoint from before the margin existed never overrides; a margin outside [0, 1) is malformed.
    payload = torch.load(tmp_path / "m0.0.pt", weights_only=True)
    del payload["fallback"]["gate"]["override_margin"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.fallback is not None and old.fallback.gate is not None and old.fallback.gate.override_margin is None
    assert Recognizer(old, device="cpu", precision="fp32").recognize([image])[0].text == "$19.99"
    payload["fallback"]["gate"]["override_margin"] = -0.1
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="domain gate is malformed"):
        load_checkpoint(tmp_path / "bad.pt")


def test_corrupted_checkpoint_weights_are_detected(tmp_path: Path, loaded_model) -> None:
    path = save_checkpoint(
        tmp_path / "m.pt", loaded_model.network, architecture="vgg_bilstm_ctc",
        alphabet=loaded_model.charset.alphabet, input_height=64, normalization=loaded_model.normalization,
        provenance={},
    )
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["Prediction.bias"][0] += 1.0
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_checkpoint(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="cannot be read"):
        load_checkpoint(path)


def test_unknown_model_and_unsafe_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="unknown model"):
        load_model("no_such_model", directory=tmp_path)
    (tmp_path / "secret.pt").write_bytes(b"x")
    inner = tmp_path / "models"
    inner.mkdir()
    for name in ("../secret", "/etc/passwd", "..", "a/../../secret", ""):
        assert find_model_file(name, inner) is None
    with pytest.raises(UnknownModelError):
        load_model(str(tmp_path / "secret.pt"), allow_paths=False, directory=inner)
