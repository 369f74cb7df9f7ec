"""Estimating how much general reading skill an adapted network has lost."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from crnn import InvalidImageError
from crnn.charset import Charset
from crnn.decode import Result
from crnn.preprocess import to_gray
from crnn.weights import LoadedModel
from ocr.adapt.general import PROBE_CHARS, hard_general_set
from ocr.adapt.scoring import Scorer
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import bootstrap, loose
from ocr.fonts import find_fonts

#: Loss rate of the rendered probe at which real words show no drop: the intercept of the real IIIT5K drop
#: against the probe's loss rate, fitted over interpolation weights 0.4-1 of one plates model (split seed 0;
#: docs/studies/adapt.md).
PROBE_FLOOR = 0.016
#: The smallest drop the rendered probe can vouch for: its estimate is never below this. In the 13 PP-OCRv6
#: small study runs that installed a gated pair, real IIIT5K drops of 0.7 to 1.9 points showed on the probe as
#: 0.2 to 0.5 (receipt lines and digits: the gate turns the probe's printed words away more surely than real
#: scene words). 1.5 points is the smallest such floor under which at most 1 of those runs in 10 understates
#: (1 of 13; without it 3); on english_g2's 191 recorded gated runs it leaves 3 (2%). At the default
#: --max-forgetting (3 points) it changes no choice, only what the report vouches for (docs/studies/adapt.md).
PROBE_RESOLUTION = 0.015
#: Share of real general words a domain gate lets through to the adapted network, by the gate's threshold
#: (``ocr.adapt.gate``), as measured on IIIT5K words: at 0.5 over the study's choose-split runs (plates split 0,
#: 10-15%), at 0.9 on the framed plates split-0 model (7.6%; docs/studies/adapt.md). The gate is fitted against
#: rendered text, so it turns away nearly all of the rendered probe; real words pass more often, and the
#: estimate of a gated option is at least this share of the network's own estimated drop.
GATE_LEAK = {0.5: 0.15, 0.9: 0.08}
#: Images read from a user's ``--general`` folder.
MAX_GENERAL_IMAGES = 500
#: The estimate is an upper confidence bound: the probe's count of lost lines (or, on real images, the
#: paired difference) plus this many standard errors (one-sided 95%). The point estimate understated the real
#: IIIT5K drop in 82 of 227 english_g2 study runs; this bound, recomputed from the same runs' figures, in 18
#: (8%; scripts/studies/forgetting_bound.py, docs/studies/adapt.md "A forgetting estimate that does not
#: understate").
UPPER_Z = 1.645


@dataclass
class ForgettingProbe:
    """General-text images read by the pretrained model once, then by any candidate.

    Built on the user's ``--general`` images when given, otherwise on a fixed,
    deliberately damaged rendered set (``hard_general_set``) that the
    pretrained model reads about as well as real scene words.

    With ``--general`` images the drop in loose accuracy (case-insensitive
    alphanumerics, no allowlist) is measured directly. On the rendered probe
    it is estimated as the share of probe images the pretrained model reads
    right and the candidate misreads, less ``PROBE_FLOOR``: the probe's
    borderline images flip both ways under any small change of weights, so its
    gains stay near 4.5% even for weights close to the pretrained ones and its
    net change sits 2-4 points below the real drop, while its losses track the
    real drop with a slope near 1. docs/studies/adapt.md sets the estimate beside the
    real drop on IIIT5K words, run by run.
    """

    #: Reads the probe at the adapted network's height and framing.
    scorer: Scorer
    #: Reads it as the pretrained model does (the same scorer when the views agree).
    pretrained_scorer: Scorer
    source: str
    zero_shot: list[str]
    #: True for the user's own labelled images (the drop is measured, not estimated).
    real: bool
    #: Seconds the pretrained model took to read the probe once (what any later pass over it costs).
    read_seconds: float

    @classmethod
    def build(cls, base: LoadedModel, charset: Charset, general: Path | None, view: LoadedModel | None = None
              ) -> ForgettingProbe:
        """The probe for ``base``; ``charset`` is how the adapted model reads (case folding), ``view`` the
        height and framing it reads at (``ocr.adapt.height.at_height``; default: the base model's)."""
        if general is not None:
            images, labels, source = [], [], str(general)
            for sample in open_dataset(general):
                if len(images) == MAX_GENERAL_IMAGES:
                    break
                try:
                    images.append(to_gray(sample.image))
                    labels.append(sample.label)
                except InvalidImageError:
                    continue  # an unreadable image says nothing about forgetting
        else:
            images, labels = hard_general_set(find_fonts(PROBE_CHARS))
            source = "rendered general text (damaged)"
        pretrained_scorer = Scorer(images, labels, base, None, charset, precision="auto")
        same = view is None or (view.input_height, view.row_crop) == (base.input_height, base.row_crop)
        scorer = pretrained_scorer if same else Scorer(images, labels, view, None, charset, precision="auto")
        start = time.perf_counter()
        zero_shot = pretrained_scorer.predict(base.network, base.charset)
        return cls(scorer, pretrained_scorer, source, zero_shot, general is not None, time.perf_counter() - start)

    @classmethod
    def shared(cls, base: LoadedModel, charset: Charset, general: Path | None, view: LoadedModel) -> ForgettingProbe:
        """:meth:`build`, but the rendered probe (``general`` None) is built once per process for the same base
        weights, case and view: ``ocr compare`` and the studies adapt many times in one process, and neither the
        probe nor the pretrained readings of it change between runs. A user's ``general`` folder is read anew."""
        if general is not None:
            return cls.build(base, charset, general, view)
        key = (base.sha256, base.input_height, base.row_crop, charset.alphabet, charset.case, view.input_height,
               view.row_crop)
        if key not in _SHARED:
            while len(_SHARED) >= MAX_SHARED_PROBES:
                _SHARED.pop(next(iter(_SHARED)))
            _SHARED[key] = cls.build(base, charset, None, view)
        return _SHARED[key]

    @property
    def labels(self) -> list[str]:
        return self.scorer.labels

    @property
    def columns(self) -> int:
        """Columns of the probe's images as the adapted network reads them (``adapted_read_seconds`` is per this
        many)."""
        return self.scorer.columns

    @property
    def adapted_read_seconds(self) -> float:
        """``read_seconds`` scaled to the adapted network's view: more columns when it crops rows (a wider
        line at the same height), fewer at a smaller height."""
        return self.read_seconds * self.scorer.columns / max(1, self.pretrained_scorer.columns)

    def read(self, network: torch.nn.Module) -> list[Result]:
        """The probe as ``network`` reads it (in the adapted model's case)."""
        return self.scorer.read(network)

    @cached_property
    def pretrained(self) -> list[Result]:
        """The probe as the pretrained network reads it in the adapted model's case (for a fallback pair)."""
        return self.pretrained_scorer.read(self.pretrained_scorer.base.network)

    def estimate(self, predictions: list[str]) -> float:
        """The estimated drop in general-text loose accuracy, from a candidate's readings of the probe: an
        upper confidence bound (``upper_drop``), so that the real drop is rarely larger; on the rendered probe,
        less ``PROBE_FLOOR`` but never below ``PROBE_RESOLUTION``."""
        right = [(loose(z) == loose(t), loose(p) == loose(t))
                 for z, p, t in zip(self.zero_shot, predictions, self.labels)]
        lost = sum(before and not after for before, after in right)
        if self.real:
            return upper_drop(lost, sum(after and not before for before, after in right), len(right))
        return max(PROBE_RESOLUTION, upper_drop(lost, 0, len(right)) - PROBE_FLOOR)

    def report(self, predictions: list[str], seed: int) -> dict:
        """Before/after accuracy with bootstrap intervals, and the estimated drop, from a candidate's readings."""
        before, after = bootstrap(self.zero_shot, self.labels, seed), bootstrap(predictions, self.labels, seed)
        return {"source": self.source, "n": len(self.labels), "zero_shot": before, "adapted": after,
                "estimated_drop": self.estimate(predictions), "measured": self.real}


#: Rendered probes kept by :meth:`ForgettingProbe.shared` (oldest dropped first).
_SHARED: dict[tuple, ForgettingProbe] = {}
MAX_SHARED_PROBES = 2


def upper_drop(lost: int, gained: int, n: int, z: float = UPPER_Z) -> float:
    """An upper confidence bound on the drop in accuracy when ``lost`` of ``n`` lines turn wrong and ``gained``
    turn right: the paired difference plus ``z`` standard errors (counted as at least one line, so that a probe
    with nothing lost still leaves room for what it did not see)."""
    if n == 0:
        return 0.0
    drop = (lost - gained) / n
    variance = max(lost + gained - (lost - gained) ** 2 / n, 1.0) / n**2
    return drop + z * variance**0.5


def gate_leak(threshold: float) -> float:
    """The leak share for a gate at ``threshold``: ``GATE_LEAK`` at the strictest measured threshold not above it
    (a stricter gate lets no more through), and the loosest one's share below them all."""
    measured = [t for t in GATE_LEAK if t <= threshold + 1e-9]
    return GATE_LEAK[max(measured)] if measured else max(GATE_LEAK.values())


def gated_drop(through_gate: float, alone: float, threshold: float) -> float:
    """The estimated drop of an option gated at ``threshold`` from the rendered probe: what it shows through the
    gate, but at least ``gate_leak(threshold)`` of the network's own estimate, as real words get past the gate
    more often."""
    return max(through_gate, gate_leak(threshold) * alone)
