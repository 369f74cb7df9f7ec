"""CTC decoding: from per-frame class scores to text, confidences and character positions.

What a confidence means
-----------------------
The network emits, for every frame (a 4-pixel-wide column band of the
resized image), a probability over the blank and every allowed character
(disallowed classes are removed and the rest renormalised, so probabilities
always sum to 1 over what the caller allows; a model that writes one letter
case first adds each letter's two case classes together). Greedy decoding takes the most
likely class per frame, merges repeats and drops blanks.

* A **character's confidence** is the highest probability the model gave that
  character in any frame of the run of frames it was read from.
* A **line's confidence** is the product of its characters' confidences: the
  chance that every character read is right, if their errors were
  independent. It does not account for characters the model missed
  entirely. An empty reading has the mean blank probability as its
  confidence.

Both are uncalibrated model scores in [0, 1]: higher means more certain, and
ranking lines by it is meaningful, but 0.9 does not promise 90% accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from crnn.charset import Charset

#: Frames are this many input columns apart (two 2x2 poolings).
FRAME_STRIDE = 4
#: Width in input columns that one frame sees beyond its start (the final 2x2 convolution).
FRAME_SPAN = 8


def frames_covering(width: int, total: int) -> int:
    """How many of ``total`` frames see real pixels of an image ``width`` columns wide (the rest see padding)."""
    return min(total, math.ceil(width / FRAME_STRIDE))


@dataclass(frozen=True)
class CharResult:
    """One recognised character and where it is, in pixels of the original image."""

    text: str
    confidence: float
    x_start: int
    x_end: int


@dataclass(frozen=True)
class Result:
    """The reading of one image."""

    text: str
    confidence: float
    chars: list[CharResult] = field(default_factory=list)
    #: With a pattern, lexicon or beam: the greedy reading, for telling a comfortable match from a forced one.
    unconstrained: Result | None = None
    #: The model's raw score when ``confidence`` is calibrated (None: ``confidence`` is the raw score).
    raw_confidence: float | None = None
    #: True when the confidence was below the caller's minimum: the text is withheld.
    rejected: bool = False


def reject_below(result: Result, minimum: float | None) -> Result:
    """``result``, or, when its confidence is below ``minimum``, the same reading withheld: no text, ``rejected``."""
    if minimum is None or result.confidence >= minimum:
        return result
    return replace(result, text="", chars=[], rejected=True)


def class_log_probs(
    logits: torch.Tensor,
    mask: np.ndarray | None,
    fold: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    floor: float = float("-inf"),
) -> torch.Tensor:
    """Log-softmax over classes ``(N, T, C)``, float32, with letter cases folded and disallowed classes removed.

    ``fold`` (``Charset.fold_rounds``) adds each merged class's probability to
    its kept twin and removes it; ``mask`` then removes disallowed classes,
    which is the same as zeroing their probabilities and renormalising the
    rest. Removed classes get ``floor`` (training passes a finite one: -inf
    turns CTC gradients into NaN).
    """
    scores = logits.float()
    if fold:
        scores = scores.log_softmax(-1)
        for kept_np, merged_np in fold:
            kept, merged = (torch.as_tensor(i, device=scores.device) for i in (kept_np, merged_np))
            both = torch.logaddexp(scores.index_select(-1, kept), scores.index_select(-1, merged))
            scores = scores.index_copy(-1, kept, both)
        merged = torch.as_tensor(np.concatenate([m for _, m in fold]), device=scores.device)
        scores = scores.index_fill(-1, merged, floor)
    if mask is not None:
        scores = scores.masked_fill(~torch.as_tensor(mask, device=scores.device), floor)
    return scores.log_softmax(-1)


def masked_probabilities(
    logits: torch.Tensor, mask: np.ndarray | None, fold: Sequence[tuple[np.ndarray, np.ndarray]] = ()
) -> torch.Tensor:
    """Probabilities over classes ``(N, T, C)``: :func:`class_log_probs`, exponentiated."""
    return class_log_probs(logits, mask, fold).exp()


def greedy_decode(
    probs: np.ndarray,
    charset: Charset,
    frames: int | None = None,
    scale_x: float = 1.0,
    image_width: int | None = None,
) -> Result:
    """Greedy CTC decoding of one line's probabilities ``(T, C)``.

    Only the first ``frames`` frames are read (the rest cover padding).
    Character spans are mapped to the original image by ``scale_x`` and
    clipped to ``image_width`` columns of it.
    """
    probs = probs[: frames if frames is not None else len(probs)]
    return path_result(probs.argmax(axis=1), probs, charset, scale_x, image_width)


def best_path(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The greedy labelling of log-scores ``(N, T, C)`` (logits or log-probabilities, normalised over C here):
    the most likely class per frame ``(N, T)`` and its probability ``(N, T)``.

    The probabilities are never all computed: only frames whose best class is
    not the blank get one (blank frames get NaN, which a greedy reading never
    uses). With 18,710 classes this is several times cheaper than a softmax.
    """
    scores = scores.float()
    values = scores.numpy()
    path = values.argmax(-1)  # numpy's argmax: several times faster than torch's max over 18,710 classes on a CPU
    best = np.take_along_axis(values, path[..., None], -1)[..., 0]
    written = path != 0
    log_norm = np.full(best.shape, np.nan, np.float32)
    if written.any():
        log_norm[written] = scores[torch.from_numpy(written)].logsumexp(-1).numpy()
    return path, np.exp(best - log_norm)


def path_result(
    path: np.ndarray, probs: np.ndarray, charset: Charset, scale_x: float = 1.0, image_width: int | None = None
) -> Result:
    """The reading of one frame labelling ``path`` ``(T,)`` of ``probs`` ``(T, C)``: repeats merged, blanks dropped.

    Each character's confidence is the highest probability its class got in
    the run of frames it was read from (see the module docstring).
    """
    if len(probs) == 0:
        return Result("", 0.0, [])
    return labelled_result(
        path, probs[np.arange(len(path)), path], lambda: float(probs[:, 0].mean()), charset, scale_x, image_width
    )


def labelled_result(
    path: np.ndarray,
    path_p: np.ndarray,
    blank_mean: Callable[[], float],
    charset: Charset,
    scale_x: float = 1.0,
    image_width: int | None = None,
) -> Result:
    """The reading of a frame labelling ``path`` ``(T,)`` whose classes have probabilities ``path_p`` ``(T,)``.

    ``blank_mean`` gives the mean blank probability, the confidence of an empty reading (asked only then).
    """
    if len(path) == 0:
        return Result("", 0.0, [])
    chars: list[CharResult] = []
    limit = image_width if image_width is not None else None
    t = 0
    while t < len(path):
        end = t
        while end + 1 < len(path) and path[end + 1] == path[t]:
            end += 1
        if path[t] != 0:
            x0 = int(np.floor(t * FRAME_STRIDE * scale_x))
            x1 = int(np.ceil((end * FRAME_STRIDE + FRAME_SPAN) * scale_x))
            if limit is not None:
                x0, x1 = min(x0, limit), min(x1, limit)
            chars.append(CharResult(charset.char(int(path[t])), float(path_p[t : end + 1].max()), x0, x1))
        t = end + 1
    while chars and chars[-1].text.isspace():  # a crop never ends or starts with a space
        chars.pop()
    while chars and chars[0].text.isspace():
        chars.pop(0)
    if chars:
        confidence = float(np.prod([c.confidence for c in chars]))
    else:
        confidence = blank_mean()
    return Result("".join(c.text for c in chars), confidence, chars)
