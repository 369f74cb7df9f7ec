"""The PP-OCRv6 small recogniser: our module against ONNX Runtime on the same tensors, its weights path, its
alphabet, and reading through the project's own path.

Tests that need the wheel's ONNX file (``rapidocr``) or ONNX Runtime skip without them.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image

from crnn import Recognizer
from crnn.decode import greedy_decode
from crnn.errors import InvalidAllowlistError, InvalidImageError, WeightsError
from crnn.lcnet_svtr import LCNetSVTR
from crnn.preprocess import PreparedImage, stack_batch
from crnn.specs import MODEL_SPECS, Normalization
from crnn.weights import load_model, load_verified_weights
from ocr.data.datasets import open_dataset
from tests.conftest import SHARED_DATA, example_bytes

SPEC = MODEL_SPECS["ppocrv6_small"]
SETS = [
    "iiit5k_test_even_scenes", "iiit5k_train_even_scenes", "svt_cs_train", "cute80_cs", "openalpr_us_plates_part1",
    "openalpr_endtoend_plate_crops_part1", "sroie_receipt_lines_part1", "uw3_lines_calamari_train",
    "mnist_t10k_first5000",
]
#: Crops per shared set in the suite's parity check; scripts/bench/model_parity.py runs every crop.
PARITY_CROPS = 24


def _weights_file():
    pytest.importorskip("rapidocr", reason="the PP-OCRv6 weights ship in the rapidocr wheel")
    return SPEC.weights_file()


@pytest.fixture(scope="module")
def ppocr() -> Recognizer:
    _weights_file()
    return Recognizer("ppocrv6_small", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def module() -> torch.nn.Module:
    """Our module as loaded (the recogniser's copy runs channels-last, whose fp32 sums differ a little from these:
    scripts/bench/model_parity.py measures both)."""
    _weights_file()
    return load_model("ppocrv6_small").network.eval()


@pytest.fixture(scope="module")
def session():
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(_weights_file()), providers=["CPUExecutionProvider"])


def test_module_shapes_follow_the_input_width() -> None:
    network = LCNetSVTR(num_classes=11).eval()
    for width in (8, 37, 320, 1000):
        with torch.no_grad():
            logits = network(torch.zeros(2, 3, 48, width))
        assert logits.shape == (2, LCNetSVTR.sequence_length(width), 11)
    assert LCNetSVTR.sequence_length(320) == 40


def test_the_head_writes_into_a_reused_buffer_as_it_computes_fresh_logits(ppocr: Recognizer) -> None:
    """``classify(out=...)`` gives the head's logits in the buffer's memory; the recogniser's plain reading reuses
    one buffer per thread, and a batch read after another still reads as it does alone."""
    network = LCNetSVTR(num_classes=11).eval()
    frames, buffer = torch.randn(2, 5, 120), torch.full((200,), float("nan"))
    with torch.no_grad():
        written = network.classify(frames, out=buffer)
        assert written.shape == (2, 5, 11) and written.data_ptr() == buffer.data_ptr()
        assert torch.allclose(written, network.classify(frames), atol=1e-5)
    crops = [ppocr.prepare(example_bytes(i)) for i in range(6)]
    if ppocr.engine is not None:
        first = ppocr._batch_logits(crops[:2], 256)
        pointer, logits = first.data_ptr(), first.clone()
        assert torch.allclose(logits, ppocr.forward(crops[:2], 256), atol=1e-4)
        assert ppocr._batch_logits(crops[2:4], 256).data_ptr() == pointer  # the same memory, overwritten
    alone = [ppocr.recognize_prepared([crop])[0].text for crop in crops]
    assert [r.text for r in ppocr.recognize_prepared(crops)] == alone


def test_probabilities_match_onnx_runtime_on_random_tensors(module, session) -> None:
    rng = np.random.default_rng(0)
    for width in (320, 704):
        x = rng.uniform(-1, 1, (2, 3, 48, width)).astype(np.float32)
        theirs = session.run(None, {"x": x})[0]
        with torch.no_grad():
            ours = torch.softmax(module(torch.from_numpy(x)), -1).numpy()
        assert np.abs(ours - theirs).max() <= 1e-4
        assert (ours.argmax(-1) == theirs.argmax(-1)).all()


#: fp32 probabilities of our module and of ONNX Runtime differ by at most this on nearly every batch ...
TOLERANCE = 1e-4
#: ... and by at most this on any of these crops. A frame near a tie between two classes turns fp32 rounding (a few
#: parts in a million of the backbone's features, in both runtimes) into more: up to 8e-4 over every crop of the
#: shared sets, with not one greedy text different (scripts/bench/model_parity.py, docs/models.md).
WORST = 1e-3


@pytest.mark.parametrize("name", SETS)
def test_probabilities_and_texts_match_onnx_runtime_on_shared_crops(name: str, ppocr: Recognizer, module, session
                                                                    ) -> None:
    """The batches the recogniser runs, through our module and through ONNX Runtime: fp32 probabilities within
    1e-4 (all but one batch at most; none beyond ``WORST``) and identical greedy texts."""
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"shared data set {name} not available")
    samples = list(islice(iter(open_dataset(SHARED_DATA / name)), PARITY_CROPS))
    prepared = [ppocr.prepare(s.image) for s in samples]
    checked = within = batches = 0
    for rows, batch in ppocr.input_batches(prepared):
        theirs = session.run(None, {"x": batch.numpy()})[0]
        with torch.no_grad():
            ours = torch.softmax(module(batch), -1).numpy()
        diff = float(np.abs(ours - theirs).max())
        assert diff <= WORST
        within += diff <= TOLERANCE
        batches += 1
        for k, i in enumerate(rows):
            a = greedy_decode(ours[k], ppocr.charset).text
            b = greedy_decode(theirs[k], ppocr.charset).text
            assert a == b, f"{samples[i].name}: {a!r} != {b!r}"
            checked += 1
    assert checked == len(samples)
    assert within >= batches - 1, f"{batches - within} of {batches} batches differ by more than {TOLERANCE}"


def test_alphabet_comes_from_the_verified_file() -> None:
    _weights_file()
    charset = SPEC.charset
    assert charset.num_classes == 18710
    assert charset.alphabet[:3] == '!"#' and charset.alphabet[-1] == " "
    assert all(ch in charset.alphabet for ch in "AZaz09éüßç中文日本語あア€")


def test_a_changed_byte_is_refused_before_the_file_is_parsed(tmp_path) -> None:
    source = _weights_file()
    copy = tmp_path / "rec.onnx"
    shutil.copyfile(source, copy)
    with open(copy, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_verified_weights(SPEC.build(), copy, SPEC.sha256, SPEC.name, "onnx")


def test_a_network_that_does_not_fit_the_file_is_refused() -> None:
    path = _weights_file()
    with pytest.raises(WeightsError, match="does not fit|learned tensors"):
        load_verified_weights(LCNetSVTR(num_classes=97), path, SPEC.sha256, SPEC.name, "onnx")


def test_reads_the_examples_like_english_g2(ppocr: Recognizer, recognizer: Recognizer) -> None:
    images = [example_bytes(i) for i in range(5)]
    ours = [r.text for r in ppocr.recognize(images)]
    theirs = [r.text for r in recognizer.recognize(images)]
    agree = sum(a.lower() == b.lower() for a, b in zip(ours, theirs))
    assert agree >= 4, (ours, theirs)


def test_colour_batches_are_bgr_and_padded_mid_grey() -> None:
    norm = Normalization(0.5, 0.5, channels=3, bgr=True, pad_value=0.0, min_width=320)
    red = np.zeros((48, 10, 3), np.uint8)
    red[..., 0] = 255
    batch = stack_batch([red], 64, norm)
    assert batch.shape == (1, 3, 48, 64)
    assert np.allclose(batch[0, 2, :, :10], 1.0) and np.allclose(batch[0, 0, :, :10], -1.0)  # R is channel 2
    assert np.allclose(batch[0, :, :, 10:], 0.0)
    grey = stack_batch([np.full((48, 10), 255, np.uint8)], 16, norm)
    assert grey.shape == (1, 3, 48, 16) and np.allclose(grey[0, :, :, :10], 1.0)


def test_short_lines_run_at_the_validated_padding_floor(ppocr: Recognizer) -> None:
    """The bundled weights read at the floor the paired rule validated (256), not the trained layout's 320; a
    caller may set another; a model with other weights (an adapted one) keeps its own layout's."""
    assert SPEC.read_min_width == 256 and SPEC.normalization.min_width == 320
    assert ppocr.padded_width(40) == 256 and ppocr.padded_width(300) == 320 and ppocr.padded_width(330) == 384
    # A page's lines carry their own floor (128, validated on page lines); a crop's floor is the recogniser's.
    assert SPEC.page_min_width == ppocr.page_min_width == 128
    short, long = (PreparedImage(np.zeros((48, w), np.uint8), w, 48) for w in (40, 300))
    assert [ppocr.run_width(replace(im, min_width=128)) for im in (short, long)] == [128, 320]
    assert [ppocr.run_width(im) for im in (short, long)] == [256, 320]
    wide = Recognizer("ppocrv6_small", device="cpu", precision="fp32", runtime="torch", min_width=320)
    assert wide.padded_width(40) == 320 and wide.page_min_width is None  # an explicit floor holds for pages too
    assert wide.batch_tensor([ppocr.prepare(example_bytes(0))], 320).shape[-1] == 320
    other = load_model("ppocrv6_small")
    other.sha256 = "0" * 64  # as for weights that are not the registered file's
    adapted = Recognizer(other, device="cpu", precision="fp32", runtime="torch")
    assert adapted.padded_width(40) == 320 and adapted.page_min_width is None
    with pytest.raises(ValueError, match="min_width"):
        Recognizer(other, device="cpu", precision="fp32", runtime="torch", min_width=-1)


def test_allowlist_masks_the_large_alphabet(ppocr: Recognizer) -> None:
    image = example_bytes(0)
    digits = ppocr.recognize([image], allowlist="0123456789")[0]
    assert set(digits.text) <= set("0123456789")
    missing = next(chr(c) for c in range(0x1F600, 0x1F700) if chr(c) not in ppocr.charset.alphabet)
    with pytest.raises(InvalidAllowlistError, match="outside the model's alphabet"):
        ppocr.recognize([image], allowlist="abc" + missing)


def test_bad_lines_get_clear_errors(ppocr: Recognizer) -> None:
    one_row = np.full((1, 60), 255, np.uint8)
    one_row[0, 20:40] = 0
    assert isinstance(ppocr.recognize([one_row])[0].text, str)
    with pytest.raises(InvalidImageError, match="aspect ratio"):
        ppocr.recognize([np.full((48, 20_000, 3), 255, np.uint8)])
    tall_enough = np.full((200, 20_000), 255, np.uint8)
    assert isinstance(ppocr.recognize([tall_enough])[0].text, str)


def test_unknown_model_names_are_refused() -> None:
    with pytest.raises(Exception, match="unknown model 'ppocrv7_small'"):
        load_model("ppocrv7_small")


def test_an_allowlist_projects_onto_its_classes_only_and_reads_the_same(ppocr: Recognizer, monkeypatch) -> None:
    """With an allowlist only the allowed classes' logits are computed; the readings are the full projection's."""
    images = [ppocr.prepare(example_bytes(i)) for i in range(5)]
    mnist = SHARED_DATA / "mnist_t10k_first5000"
    if mnist.is_dir():
        images += [ppocr.prepare(s.image) for s in islice(iter(open_dataset(mnist)), 40)]
    allow = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    calls = []
    forward = ppocr.forward
    monkeypatch.setattr(ppocr, "forward", lambda *a, **k: calls.append(a[2:] or k) or forward(*a, **k))
    subset = ppocr.recognize_prepared(images, allow)
    assert calls and all(len(c[0]) == len(allow) + 1 for c in calls)  # the blank and the allowed classes
    monkeypatch.setattr(Recognizer, "subset_projection", property(lambda self: False))
    full = ppocr.recognize_prepared(images, allow)
    assert [r.text for r in subset] == [r.text for r in full]
    assert [r.confidence for r in subset] == pytest.approx([r.confidence for r in full], abs=1e-5)
    assert [[(c.x_start, c.x_end) for c in r.chars] for r in subset] == [
        [(c.x_start, c.x_end) for c in r.chars] for r in full]


def test_onnx_export_matches_the_module(ppocr: Recognizer, tmp_path) -> None:
    """``ocr export`` writes this architecture too: colour input, dynamic batch and width, the same logits and texts."""
    pytest.importorskip("onnxruntime")
    from ocr.commands.export import ExportConfig, OnnxNetwork, run_export

    graph = OnnxNetwork(run_export(ExportConfig("ppocrv6_small", tmp_path / "pp.onnx")), threads=2)
    assert graph.metadata["weights_sha256"] == SPEC.sha256
    assert json.loads(graph.metadata["normalization"])["channels"] == 3
    images = [ppocr.prepare(example_bytes(i)) for i in range(5)]
    images.append(ppocr.prepare(np.hstack([np.asarray(Image.open(io.BytesIO(example_bytes(i)))) for i in (0,) * 6])))
    widths = set()
    for _rows, tensor in ppocr.input_batches(images):
        with torch.inference_mode():
            ours = ppocr.network(tensor).softmax(-1).numpy()
        theirs = torch.from_numpy(graph(tensor.numpy())).softmax(-1).numpy()
        widths.add(tensor.shape[-1])
        assert theirs.shape == ours.shape
        assert np.abs(theirs - ours).max() < 1e-3
        assert [greedy_decode(p, ppocr.charset).text for p in ours] == [
            greedy_decode(p, ppocr.charset).text for p in theirs]
    assert len(widths) > 1
