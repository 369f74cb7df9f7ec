"""Fitting an adapted model's domain gate (``crnn.gate.DomainGate``) on its own features."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from crnn.gate import DomainGate
from crnn.preprocess import prepare
from crnn.weights import LoadedModel
from ocr.adapt.scoring import image_features

#: Inverse L2 strength of the gate's logistic regression (on standardised features): strong, as a few
#: dozen domain images in 512 dimensions are easy to separate by accident.
GATE_C = 0.1
#: Probability of the domain a line needs for the adapted network to read it, for a network that reads whole lines.
GATE_THRESHOLD = 0.5
#: The same for a network that cuts rows off each line (``row_crop > 0``): it reads general words with their
#: tops and bottoms cut, so every general word the gate lets through costs more. On the framed plates
#: split-0 model, 0.9 let 7.6% of IIIT5K words through instead of 14% (real drop 2.9 -> 1.4 points) and
#: turned away 1.4% of the unseen plates (0.751 -> 0.744); docs/studies/adapt.md.
CUT_GATE_THRESHOLD = 0.9
#: A line the gate turns away keeps the adapted reading when its raw confidence beats the pretrained reading's by
#: more than this (``DomainGate.override_margin``). Chosen on the split-0 models: the smallest margin at which plates
#: forget within 0.1 point of no override (IIIT5K drop 0.9 against 0.8; 3.1 at margin 0), while receipts read other
#: shops' lines better (0.678 -> 0.696) and forget less (0.5 -> -0.6); digits forget 0.4 points more (0.3 -> 0.7)
#: and gain nothing, as their gate keeps every digit; docs/studies/adapt.md, "Keeping a surer adapted reading".
OVERRIDE_MARGIN = 0.2


def gate_threshold(row_crop: float) -> float:
    """The gate threshold for an adapted network that reads lines framed by ``row_crop``."""
    return CUT_GATE_THRESHOLD if row_crop > 0 else GATE_THRESHOLD


def fit_gate(
    network: torch.nn.Module, base: LoadedModel, domain: list[np.ndarray], general: list[np.ndarray]
) -> DomainGate:
    """A gate telling ``domain`` grey images (and lines like them) from ``general`` text, in ``network``'s features.

    The two classes are weighted equally whatever their counts. Both are read
    as ``base`` (the adapted model's view) reads a line: at its height and framing,
    which also sets the threshold (``gate_threshold``). Its override margin is ``OVERRIDE_MARGIN``.
    """
    prepared = [prepare(im, base.input_height, base.row_crop) for im in [*domain, *general]]
    features = image_features(network, base, prepared)
    labels = np.r_[np.ones(len(domain)), np.zeros(len(general))]
    scaler = StandardScaler().fit(features)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=GATE_C, class_weight="balanced", max_iter=2000)
    model.fit((features - scaler.mean_) / scale, labels)
    return DomainGate(scaler.mean_.copy(), scale, model.coef_[0].copy(), float(model.intercept_[0]),
                      gate_threshold(base.row_crop), OVERRIDE_MARGIN)
