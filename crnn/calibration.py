"""Calibrated confidence: a model's raw line score turned into the probability that the reading is exactly right.

The raw score (the product of character confidences, see ``crnn.decode``)
ranks lines well but overstates how often they are right. A calibration is a
monotone map from raw score to the share of lines read exactly right (case
included), fitted (beta calibration for the bundled model; Platt scaling is
the default of ``Calibration.fit``) on labelled lines the model did not
train on (``scripts/tools/fit_calibration.py``; the fit and its checks are in
docs/studies/decoding.md). Being monotone, it never changes which of two readings is
more confident, only what the number means.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Calibration tables shipped with the package, one JSON file per registered model.
TABLES = Path(__file__).with_name("calibrations")


@dataclass(frozen=True)
class Calibration:
    """A monotone piecewise-linear map from raw score to probability, through ``(raw, probability)`` knots."""

    raw: tuple[float, ...]
    probability: tuple[float, ...]
    #: Where the knots came from (data set, number of lines).
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.raw) != len(self.probability) or len(self.raw) < 2:
            raise ValueError("a calibration needs at least two (raw, probability) knots")
        if np.any(np.diff(self.raw) < 0) or np.any(np.diff(self.probability) < 0):
            raise ValueError("calibration knots must be non-decreasing")

    def __call__(self, raw: float) -> float:
        """The calibrated probability of one raw score."""
        return float(np.interp(raw, self.raw, self.probability))

    @classmethod
    def fit(cls, raw: Sequence[float], correct: Sequence[bool], source: str = "", method: str = "platt"
            ) -> Calibration:
        """Fit the map on raw scores and exact correctness (scikit-learn), kept as knots.

        ``platt``: a logistic regression on the log-odds of the raw score,
        strictly increasing, so it keeps the ranking of lines (a threshold can
        reject any share of them); ``beta``: a logistic regression on ln p and
        -ln(1 - p) separately (three parameters instead of two, still strictly
        increasing; Platt when a slope comes out negative); ``isotonic``:
        isotonic regression, whose flat steps tie many lines at one value.
        """
        x, y = np.asarray(raw, float), np.asarray(correct, float)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(x, y)
            xs = np.concatenate([[0.0], model.X_thresholds_, [1.0]])
            ys = np.concatenate([[model.y_thresholds_[0]], model.y_thresholds_, [model.y_thresholds_[-1]]])
            keep = np.concatenate([[True], np.diff(xs) > 0])  # interp needs distinct x
            return cls(tuple(np.round(xs[keep], 6)), tuple(np.round(ys[keep], 6)), source + ", isotonic")
        if method not in ("platt", "beta"):
            raise ValueError(f"unknown calibration method {method!r}")
        from sklearn.linear_model import LogisticRegression

        features = _log_odds_features if method == "platt" else _beta_features
        model = LogisticRegression(C=1e6).fit(features(x), y)
        if method == "beta" and np.any(model.coef_ <= 0):
            # Beta calibration is monotone only with both slopes positive; otherwise its Platt special case is.
            return cls.fit(raw, correct, source, "platt")
        if model.coef_[0, 0] <= 0:
            raise ValueError("raw scores do not rise with correctness here; refusing a decreasing calibration")
        # Knots dense where scores crowd (near 0 and 1), so linear interpolation follows the sigmoid closely.
        xs = np.unique(np.concatenate([np.linspace(0, 1, 201), 1 - np.logspace(-6, -1, 41), np.logspace(-6, -1, 41)]))
        ys = model.predict_proba(features(xs))[:, 1]
        name = "Platt" if method == "platt" else "beta"
        return cls(tuple(np.round(xs, 8)), tuple(np.round(ys, 8)), f"{source}, {name}")

    def to_json(self) -> str:
        return json.dumps({"raw": list(self.raw), "probability": list(self.probability), "source": self.source},
                          indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        return cls(tuple(map(float, data["raw"])), tuple(map(float, data["probability"])), str(data.get("source", "")))


def _log_odds_features(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))[:, None]


def _beta_features(p: np.ndarray) -> np.ndarray:
    """ln p and -ln(1 - p): beta calibration (Kull et al., 2017) has a slope for each, Platt one for their sum."""
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.stack([np.log(q), -np.log(1 - q)], axis=1)


def shipped_calibration(model: str) -> Calibration | None:
    """The calibration shipped for a registered model, or None."""
    path = TABLES / f"{model}.json"
    return Calibration.from_json(path.read_text(encoding="utf-8")) if path.is_file() else None
