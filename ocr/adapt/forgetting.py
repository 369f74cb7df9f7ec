"""Estimating how much general reading skill an adapted network has lost."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from crnn import InvalidImageError
from crnn.charset import Charset
from crnn.preprocess import to_gray
from crnn.weights import LoadedModel
from ocr.adapt.general import PROBE_CHARS, hard_general_set
from ocr.adapt.render import find_fonts
from ocr.adapt.scoring import Scorer
from ocr.datasets import open_dataset
from ocr.metrics import bootstrap, score

#: Images read from a user's ``--general`` folder.
MAX_GENERAL_IMAGES = 500


@dataclass
class ForgettingProbe:
    """General-text images read by the pretrained model once, then by any candidate.

    Built on the user's ``--general`` images when given, otherwise on a fixed,
    deliberately damaged rendered set (``hard_general_set``) that the
    pretrained model reads about as well as real scene words. The estimate is
    the drop in loose accuracy (case-insensitive alphanumerics, no allowlist)
    from the pretrained model to the candidate; docs/adapt.md compares it with
    the real drop on IIIT5K words.
    """

    scorer: Scorer
    source: str
    zero_shot: list[str]

    @classmethod
    def build(cls, base: LoadedModel, charset: Charset, general: Path | None, seed: int = 0) -> ForgettingProbe:
        """The probe for ``base``; ``charset`` is how the adapted model reads (case folding)."""
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
        scorer = Scorer(images, labels, base, None, charset, precision="auto")
        return cls(scorer, source, scorer.predict(base.network, base.charset))

    @property
    def labels(self) -> list[str]:
        return self.scorer.labels

    def drop(self, network: torch.nn.Module) -> float:
        """Loose accuracy of the pretrained model minus that of ``network`` on the probe."""
        return score(self.zero_shot, self.labels).loose - score(self.scorer.predict(network), self.labels).loose

    def report(self, network: torch.nn.Module, seed: int) -> dict:
        """Before/after accuracy with bootstrap intervals, and the estimated drop."""
        adapted = self.scorer.predict(network)
        before, after = bootstrap(self.zero_shot, self.labels, seed), bootstrap(adapted, self.labels, seed)
        return {"source": self.source, "n": len(self.labels), "zero_shot": before, "adapted": after,
                "estimated_drop": before["loose"].value - after["loose"].value}
