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


def fit_gate(
    network: torch.nn.Module, base: LoadedModel, domain: list[np.ndarray], general: list[np.ndarray]
) -> DomainGate:
    """A gate telling ``domain`` grey images (and lines like them) from ``general`` text, in ``network``'s features.

    The two classes are weighted equally whatever their counts. Both are read
    as ``base`` (the adapted model's view) reads a line: at its height and framing.
    """
    prepared = [prepare(im, base.input_height, base.row_crop) for im in [*domain, *general]]
    features = image_features(network, base, prepared)
    labels = np.r_[np.ones(len(domain)), np.zeros(len(general))]
    scaler = StandardScaler().fit(features)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=GATE_C, class_weight="balanced", max_iter=2000)
    model.fit((features - scaler.mean_) / scale, labels)
    return DomainGate(scaler.mean_.copy(), scale, model.coef_[0].copy(), float(model.intercept_[0]))
