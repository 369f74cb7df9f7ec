"""The domain gate of an adapted model: does a line look like the images it was adapted on?

An adapted network reads its own domain well and general text worse than the
pretrained one. The gate is a logistic regression on the line's pooled
convolutional features (mean and spread over the line's frames, from the
adapted network's own forward pass, so lines of the domain cost nothing
extra); lines it places outside the domain are read by the pretrained model
too, whose reading is kept unless the adapted one is surer by more than the
gate's override margin (see ``DomainGate.keeps_own`` and ``crnn.weights.Fallback``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crnn.decode import Result


@dataclass(frozen=True)
class DomainGate:
    """``p(domain) = sigmoid(coef . (features - mean) / scale + intercept)``; the line is in the domain at
    ``p >= threshold`` (0.5 unless the adapt job chose a stricter one).

    A line placed outside is read by the pretrained model, but keeps the adapted reading when that reading's raw
    confidence beats the pretrained one's by more than ``override_margin`` (None: never; see ``keeps_own``).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5
    override_margin: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"a domain gate's threshold must be between 0 and 1, not {self.threshold}")
        if self.override_margin is not None and not 0 <= self.override_margin < 1:
            raise ValueError(f"a domain gate's override margin must be in [0, 1), not {self.override_margin}")

    def probability(self, features: np.ndarray) -> np.ndarray:
        """``(N, D)`` pooled features -> ``(N,)`` probabilities that each line belongs to the domain."""
        z = ((features - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def in_domain(self, features: np.ndarray) -> np.ndarray:
        return self.probability(features) >= self.threshold

    def keeps_own(self, own: Result, pretrained: Result) -> bool:
        """For a line outside the domain: keep the adapted reading ``own`` rather than the pretrained model's?
        Only a reading with text, whose raw confidence is higher by more than the margin (an empty reading scores
        its frames' blank probability, which says nothing about the line's text)."""
        return (self.override_margin is not None and bool(own.text)
                and own.confidence > pretrained.confidence + self.override_margin)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": float(self.intercept), "threshold": float(self.threshold),
                "override_margin": None if self.override_margin is None else float(self.override_margin)}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> DomainGate:
        arrays = [np.asarray(entry[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if not (arrays[0].ndim == 1 and all(a.shape == arrays[0].shape for a in arrays)):
            raise ValueError("a domain gate needs mean, scale and coef vectors of one length")
        # Checkpoints before 2026-12-05 have no threshold (0.5) and no override margin (None); code before then
        # ignores both, routing at 0.5 with no override.
        margin = entry.get("override_margin")
        return cls(*arrays, float(entry["intercept"]), float(entry.get("threshold", 0.5)),
                   None if margin is None else float(margin))


def pooled_features(conv: torch.Tensor, frames: Sequence[int]) -> np.ndarray:
    """Convolutional output ``(N, C, H, T)`` -> ``(N, 2C)``: mean and spread over each line's first ``frames[i]``."""
    sequence = conv.float().mean(dim=2)  # (N, C, T), as the network pools it
    rows = []
    for i, n in enumerate(frames):
        valid = sequence[i, :, : max(1, n)]
        spread = valid.std(dim=1, unbiased=False)
        rows.append(torch.cat([valid.mean(dim=1), spread]).cpu().numpy())
    return np.stack(rows).astype(np.float64)


def can_tap(network: nn.Module) -> bool:
    """Whether ``feature_tap`` finds convolutional features in ``network`` (a CRNN or PP-OCRv6 small)."""
    return hasattr(network, "FeatureExtraction") or hasattr(network, "encoder")


@contextmanager
def feature_tap(network: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, every forward pass of ``network`` appends its convolutional frames ``(N, C, H, T)`` to the
    yielded list: the output of a CRNN's ``FeatureExtraction``, or the input of PP-OCRv6's sequence ``encoder``
    (its backbone pooled to one row per frame)."""
    captured: list[torch.Tensor] = []
    if not can_tap(network):
        raise TypeError(f"no convolutional features to tap in a {type(network).__name__}")
    if hasattr(network, "FeatureExtraction"):
        handle = network.FeatureExtraction.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    else:
        handle = network.encoder.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    try:
        yield captured
    finally:
        handle.remove()
