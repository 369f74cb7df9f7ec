"""Greedy CTC decoding with hand-built scores."""

from __future__ import annotations

import numpy as np
import torch

from crnn.charset import Charset
from crnn.decode import FRAME_SPAN, FRAME_STRIDE, best_path, greedy_decode, labelled_result, masked_probabilities

CHARSET = Charset("abc ")  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space


def one_hot(path: list[int], p: float = 0.9, classes: int = 5) -> np.ndarray:
    """Frames where class path[t] has probability p and the rest share 1 - p."""
    probs = np.full((len(path), classes), (1 - p) / (classes - 1), dtype=np.float32)
    probs[np.arange(len(path)), path] = p
    return probs


def test_merges_repeats_and_drops_blanks() -> None:
    result = greedy_decode(one_hot([1, 1, 0, 1, 2, 2, 0, 3]), CHARSET)
    assert result.text == "aabc"


def test_blank_between_repeats_keeps_both() -> None:
    assert greedy_decode(one_hot([2, 0, 2]), CHARSET).text == "bb"
    assert greedy_decode(one_hot([2, 2, 2]), CHARSET).text == "b"


def test_confidences_char_max_and_line_product() -> None:
    probs = one_hot([1, 1, 0, 2])
    probs[0, 1], probs[1, 1] = 0.6, 0.8  # run of 'a': best frame 0.8
    probs[3, 2] = 0.5
    result = greedy_decode(probs, CHARSET)
    assert [c.text for c in result.chars] == ["a", "b"]
    assert np.isclose(result.chars[0].confidence, 0.8)
    assert np.isclose(result.chars[1].confidence, 0.5)
    assert np.isclose(result.confidence, 0.4)


def test_empty_reading_has_mean_blank_confidence() -> None:
    probs = one_hot([0, 0, 0], p=0.7)
    result = greedy_decode(probs, CHARSET)
    assert result.text == "" and result.chars == []
    assert np.isclose(result.confidence, 0.7)


def test_frames_limit_ignores_padding() -> None:
    assert greedy_decode(one_hot([1, 0, 3, 3]), CHARSET, frames=2).text == "a"


def test_leading_and_trailing_spaces_are_dropped_inner_kept() -> None:
    assert greedy_decode(one_hot([4, 1, 0, 4, 0, 2, 4]), CHARSET).text == "a b"


def test_spans_in_input_pixels() -> None:
    result = greedy_decode(one_hot([0, 1, 1, 0, 2]), CHARSET, scale_x=2.0, image_width=40)
    a, b = result.chars
    assert (a.x_start, a.x_end) == (1 * FRAME_STRIDE * 2, (2 * FRAME_STRIDE + FRAME_SPAN) * 2)
    assert b.x_start == 4 * FRAME_STRIDE * 2 and b.x_end == 40  # clipped to the image


def test_allowlist_mask_renormalises_before_argmax() -> None:
    logits = torch.log(torch.tensor([[[0.1, 0.5, 0.3, 0.1, 0.0001]]]))  # 'a' wins unmasked
    mask = CHARSET.allow_mask("bc")
    probs = masked_probabilities(logits, mask)[0].numpy()
    assert probs[0, 1] == 0.0
    assert np.isclose(probs[0].sum(), 1.0)
    assert np.isclose(probs[0, 2], 0.3 / 0.5)  # renormalised over blank, b, c
    assert greedy_decode(probs, CHARSET).text == "b"


def test_allowlist_rejects_unknown_characters() -> None:
    import pytest

    from crnn.errors import InvalidAllowlistError

    with pytest.raises(InvalidAllowlistError, match="'z'"):
        CHARSET.allow_mask("az")
    assert CHARSET.allow_mask("") is None


def test_case_folding_adds_both_cases_and_writes_one() -> None:
    charset = Charset("aAb", case="upper")  # classes: 0 blank, 1 a, 2 A, 3 b
    logits = torch.log(torch.tensor([[[0.05, 0.3, 0.25, 0.4]]]))  # 'b' wins unless a and A count as one
    assert greedy_decode(masked_probabilities(logits, None)[0].numpy(), charset).text == "b"
    probs = masked_probabilities(logits, None, charset.fold_rounds)[0].numpy()
    assert probs[0, 1] == 0.0 and np.isclose(probs[0, 2], 0.55) and np.isclose(probs[0].sum(), 1.0)
    assert greedy_decode(probs, charset).text == "A"
    assert charset.allow_mask("ab").tolist() == [True, False, True, True]  # 'a' allows its upper-case class
    assert charset.in_case("a-b") == "A-b"  # no 'B' in the alphabet: 'b' stays
    lower = Charset("aAb", case="lower")
    assert [i.tolist() for i in lower.case_fold] == [[1], [2]]
    assert Charset("aAb").case_fold is None


def test_case_folding_adds_every_letter_that_folds_into_one() -> None:
    # PP-OCRv6's alphabet has both 'i' and the dotless 'ı', and both are 'I' in upper case: folding must add
    # all three (a single vectorised update kept only the last pair, and an adapted model read "WHJTE").
    charset = Charset("iıIw", case="upper")  # classes: 0 blank, 1 i, 2 ı, 3 I, 4 w
    assert len(charset.fold_rounds) == 2
    logits = torch.log(torch.tensor([[[0.05, 0.25, 0.05, 0.2, 0.45]]]))
    probs = masked_probabilities(logits, None, charset.fold_rounds)[0].numpy()
    assert probs[0, 1] == probs[0, 2] == 0.0 and np.isclose(probs[0, 3], 0.5)
    assert greedy_decode(probs, charset).text == "I"


def test_unknown_case_is_rejected() -> None:
    import pytest

    with pytest.raises(ValueError, match="case"):
        Charset("aA", case="title")


def test_best_path_reads_like_the_full_softmax() -> None:
    """The served greedy path (best class and its probability, no full softmax) gives the same readings,
    confidences and spans as decoding the full probabilities, empty readings included."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 12, 5, generator=generator) * 3
    logits[:4, :, 0] += 50  # lines the model leaves empty: their confidence is the mean blank probability
    path, path_p = best_path(logits)
    probs = logits.log_softmax(-1).exp().numpy()
    assert np.isnan(path_p[path == 0]).all() and not np.isnan(path_p[path != 0]).any()
    for k in range(len(logits)):
        full = greedy_decode(probs[k], CHARSET, scale_x=2.0, image_width=90)
        fast = labelled_result(path[k], path_p[k], lambda k=k: float(probs[k, :, 0].mean()), CHARSET, 2.0, 90)
        assert fast.text == full.text
        assert np.isclose(fast.confidence, full.confidence, rtol=1e-5)
        assert [(c.text, c.x_start, c.x_end) for c in fast.chars] == [(c.text, c.x_start, c.x_end) for c in full.chars]
    assert labelled_result(path[0], path_p[0], lambda: 0.25, CHARSET).confidence == 0.25
