"""Choosing how an adapted network sees its lines: the input height, and the rows cut or added at the edges.

The pretrained network averages its last feature map over height, so it
reads any height; 64 rows is what it was trained at. Small text (receipt
lines about 24 pixels high) is upscaled 2.7 times to get there, and on the
study's receipts the pretrained model reads as well at 48 rows, where a line
costs about half as much to train on (three quarters of the rows and of the
columns): on the receipts report splits the 3-minute final fit trained 2.6
times as many lines (docs/studies/adapt.md, "Smaller input height for small text"). Plates and digits read worse at 48
and keep 64.

Framing (``crnn.preprocess.frame_rows``) is chosen the same way, by the
pretrained network's character error rate on the labelled images, counted
as loose accuracy compares texts (case, spaces and punctuation ignored, so a
plate read ``ABC-123`` for ``ABC123`` costs nothing): a plate's characters sit
between a state name and a slogan, which the pretrained network reads as
text, and cutting 10% of the rows at the top and bottom lowers that error
rate from 0.29 to 0.19 on the study's plates; receipt lines are cut tight to
their letters, and at 64 rows a margin of edge rows lowers it from 0.087 to
0.076 (docs/studies/adapt.md, "Framing").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from crnn.charset import Charset
from crnn.weights import LoadedModel
from ocr.adapt.scoring import Scorer
from ocr.eval.metrics import loose_cer, score

#: The smaller height tried, as a share of the pretrained model's.
SMALL_HEIGHT_SHARE = 0.75
#: Heights below this leave the convolutional stack too few rows.
MIN_HEIGHT = 32
#: Framings tried at the chosen height (share of the height cut from top and bottom; negative: added). Not
#: 0.15: it reads plates about as well as 0.1, but general words far worse (IIIT5K loose 0.708 unframed, 0.637 at
#: 0.1, 0.527 at 0.15), and words that get past the domain gate are read framed; on plates split 1 no option
#: of a 0.15 network kept the estimated drop within 3 points (docs/studies/adapt.md, "Framing").
ROW_CROPS = (0.1, -0.1)
#: A framing must lower the pretrained loose CER on the labelled images by at least this share of it to be
#: chosen over none: on 80 images a smaller difference may be a line or two.
MIN_FRAMING_GAIN = 0.05


def at_height(model: LoadedModel, height: int, row_crop: float = 0.0) -> LoadedModel:
    """The same model read at ``height`` rows, framed by ``row_crop`` (same network object)."""
    if height == model.input_height and row_crop == model.row_crop:
        return model
    return replace(model, input_height=height, row_crop=row_crop)


@dataclass(frozen=True)
class ViewChoice:
    """The chosen input height and framing, with the pretrained CER on the labelled images behind each."""

    height: int
    row_crop: float
    #: Pretrained CER at each height tried (unframed).
    height_cer: dict[int, float]
    #: Pretrained loose CER (``ocr.eval.metrics.loose_cer``) at the chosen height for each framing tried (0.0: none).
    framing_cer: dict[float, float]


#: The pretrained network's readings of the labelled images through each (height, row_crop) view, per choice.
Readings = dict[tuple[int, float], list[str]]


def _cer(base: LoadedModel, view: LoadedModel, images: list[np.ndarray], labels: list[str], allow: str | None,
         charset: Charset, loosely: bool = False, readings: Readings | None = None) -> float:
    """The pretrained network's CER on ``images`` read through ``view`` (``loosely``: ``loose_cer``); readings
    already in ``readings`` are not read again."""
    readings = {} if readings is None else readings
    key = (view.input_height, view.row_crop)
    if key not in readings:
        readings[key] = Scorer(images, labels, view, allow, charset).predict(base.network)
    return loose_cer(readings[key], labels) if loosely else score(readings[key], labels).cer


def choose_height(
    base: LoadedModel, images: list[np.ndarray], labels: list[str], allow: str | None, charset: Charset,
    readings: Readings | None = None,
) -> tuple[int, dict[int, float]]:
    """The pretrained height, or ``SMALL_HEIGHT_SHARE`` of it when the pretrained network's character error rate
    on the labelled ``images`` is no higher there; also returns the CER at each height tried."""
    small = max(MIN_HEIGHT, int(round(base.input_height * SMALL_HEIGHT_SHARE / 8)) * 8)
    cer = {height: _cer(base, at_height(base, height), images, labels, allow, charset, readings=readings)
           for height in (base.input_height, small)}
    return (small if cer[small] <= cer[base.input_height] else base.input_height), cer


def choose_framing(
    base: LoadedModel, height: int, images: list[np.ndarray], labels: list[str], allow: str | None,
    charset: Charset, readings: Readings | None = None,
) -> tuple[float, dict[float, float]]:
    """The framing in ``ROW_CROPS`` with the lowest pretrained loose CER at ``height``, if it beats none by
    ``MIN_FRAMING_GAIN`` of none's, else none (0.0); also returns the loose CER of each framing tried."""
    cer = {row_crop: _cer(base, at_height(base, height, row_crop), images, labels, allow, charset, True, readings)
           for row_crop in (0.0, *ROW_CROPS)}
    best = min(ROW_CROPS, key=cer.__getitem__)
    return (best if cer[best] < cer[0.0] * (1 - MIN_FRAMING_GAIN) else 0.0), cer


def choose_view(
    base: LoadedModel, images: list[np.ndarray], labels: list[str], allow: str | None, charset: Charset,
    height: int | None = None, row_crop: float | None = None,
) -> ViewChoice:
    """Height (``choose_height``, for a network that reads any height) then framing at that height
    (``choose_framing``), each unless given."""
    readings: Readings = {}  # the unframed readings at the chosen height serve both choices
    height_cer: dict[int, float] = {}
    if height is None and not getattr(base.network, "READS_ANY_HEIGHT", True):
        height = base.input_height
    if height is None:
        height, height_cer = choose_height(base, images, labels, allow, charset, readings)
    framing_cer: dict[float, float] = {}
    if row_crop is None:
        row_crop, framing_cer = choose_framing(base, height, images, labels, allow, charset, readings)
    return ViewChoice(height, row_crop, height_cer, framing_cer)
