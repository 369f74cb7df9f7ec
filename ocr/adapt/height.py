"""Choosing the input height an adapted network trains and reads at.

The pretrained network averages its last feature map over height, so it
reads any height; 64 rows is what it was trained at. Small text (receipt
lines about 24 pixels high) is upscaled 2.7 times to get there, and on the
study's receipts the pretrained model reads as well at 48 rows, where a line
costs about half as much to train on (three quarters of the rows and of the
columns): on the receipts report splits the 3-minute final fit trained 2.6
times as many lines (docs/adapt.md, "Smaller input height for small text"). Plates and digits read worse at 48
and keep 64.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from crnn.charset import Charset
from crnn.weights import LoadedModel
from ocr.adapt.scoring import Scorer
from ocr.metrics import score

#: The smaller height tried, as a share of the pretrained model's.
SMALL_HEIGHT_SHARE = 0.75
#: Heights below this leave the convolutional stack too few rows.
MIN_HEIGHT = 32


def at_height(model: LoadedModel, height: int) -> LoadedModel:
    """The same model read at ``height`` rows (same network object)."""
    return model if height == model.input_height else replace(model, input_height=height)


def choose_height(
    base: LoadedModel, images: list[np.ndarray], labels: list[str], allow: str | None, charset: Charset
) -> tuple[int, dict[int, float]]:
    """The pretrained height, or ``SMALL_HEIGHT_SHARE`` of it when the pretrained network's character error rate
    on the labelled ``images`` is no higher there; also returns the CER at each height tried."""
    small = max(MIN_HEIGHT, int(round(base.input_height * SMALL_HEIGHT_SHARE / 8)) * 8)
    cer = {}
    for height in (base.input_height, small):
        scorer = Scorer(images, labels, at_height(base, height), allow, charset)
        cer[height] = score(scorer.predict(base.network), labels).cer
    return (small if cer[small] <= cer[base.input_height] else base.input_height), cer
