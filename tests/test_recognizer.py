"""The Recognizer end to end on real weights: batching independence, allowlists, spans, precision."""

from __future__ import annotations

import random
from itertools import islice

import numpy as np
import pytest

from crnn import InvalidImageError, Recognizer
from crnn.errors import InvalidAllowlistError
from crnn.runtime import cpu_supports_bf16
from ocr.data.datasets import open_dataset
from tests.conftest import EXAMPLES, shared_set


def example_images() -> tuple[list[bytes], list[str]]:
    samples = list(open_dataset(EXAMPLES))
    return [s.image for s in samples], [s.label for s in samples]


def test_reads_the_bundled_examples(recognizer: Recognizer) -> None:
    images, labels = example_images()
    texts = [r.text for r in recognizer.recognize(images)]
    assert sum(t == label for t, label in zip(texts, labels)) >= len(labels) - 1


def test_results_keep_input_order_and_spans_lie_inside_the_image(recognizer: Recognizer) -> None:
    images, _ = example_images()
    results = recognizer.recognize(images)
    alone = [recognizer.recognize([image])[0] for image in images]
    assert [r.text for r in results] == [r.text for r in alone]
    for image, result in zip(images, results):
        width = recognizer.prepare(image).original_width
        assert result.text == "".join(c.text for c in result.chars)
        assert result.text == result.text.strip()
        starts = [c.x_start for c in result.chars]
        assert starts == sorted(starts)
        assert all(0 <= c.x_start < c.x_end <= width for c in result.chars)
        assert 0.0 <= result.confidence <= 1.0


def test_allowlist_restricts_output(recognizer: Recognizer) -> None:
    images, _ = example_images()
    results = recognizer.recognize(images, allowlist="0123456789")
    assert all(set(r.text) <= set("0123456789") for r in results)
    with pytest.raises(InvalidAllowlistError):
        recognizer.recognize(images[:1], allowlist="abc\u00e9")


def test_bad_image_error_names_its_index(recognizer: Recognizer) -> None:
    images, _ = example_images()
    with pytest.raises(InvalidImageError, match="image 1"):
        recognizer.recognize([images[0], b"garbage"])


def test_single_digit_crop_and_one_pixel_wide_image(recognizer: Recognizer) -> None:
    digit = np.full((36, 36), 255, np.uint8)
    digit[8:28, 16:20] = 0  # a "1"
    assert recognizer.recognize([digit], allowlist="0123456789")[0].text == "1"
    result = recognizer.recognize([np.full((40, 1), 255, np.uint8)])[0]
    assert isinstance(result.text, str)


def test_batches_stay_within_one_bucket_and_size(recognizer: Recognizer) -> None:
    rng = np.random.default_rng(0)
    images = [recognizer.prepare(np.full((32, int(w)), 255, np.uint8)) for w in rng.integers(5, 400, 100)]
    small = Recognizer(recognizer.model, device="cpu", precision="fp32", batch_size=4)
    seen = []
    for batch in small.batches(images):
        assert len(batch) <= 4
        assert len({-(-images[i].width // 64) for i in batch}) == 1
        seen.extend(batch)
    assert sorted(seen) == list(range(100))


def test_text_does_not_depend_on_batch_companions(recognizer: Recognizer) -> None:
    """Shuffle and regroup 600 crops of a shared set into other batches and widths: at most one text may change."""
    dataset = open_dataset(shared_set("iiit5k_test_even_scenes"))
    prepared = [recognizer.prepare(s.image) for s in islice(dataset, 600)]
    reference = [r.text for r in recognizer.recognize_prepared(prepared)]
    order = list(range(len(prepared)))
    random.Random(7).shuffle(order)
    other = Recognizer(recognizer.model, device="cpu", precision="fp32", batch_size=7, batch_columns=7 * 1024)
    shuffled = other.recognize_prepared([prepared[i] for i in order])
    same = sum(shuffled[k].text == reference[i] for k, i in enumerate(order))
    assert same >= len(order) - 1


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no fast bf16")
def test_bf16_agrees_with_fp32_on_examples(recognizer: Recognizer) -> None:
    images, _ = example_images()
    bf16 = Recognizer(recognizer.model, device="cpu", precision="bf16")
    assert bf16.precision == "bf16"
    assert [r.text for r in bf16.recognize(images)] == [r.text for r in recognizer.recognize(images)]


def test_precision_and_device_validation(recognizer: Recognizer) -> None:
    with pytest.raises(ValueError, match="fp16"):
        Recognizer(recognizer.model, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        Recognizer(recognizer.model, device="cpu", precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        Recognizer(recognizer.model, device="tpu")
    assert Recognizer(recognizer.model, device="cpu", precision="auto").precision in ("bf16", "fp32")
