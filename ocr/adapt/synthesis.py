"""What one fit's training batches are drawn from: augmented labelled images and rendered domain lines."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crnn.preprocess import frame_rows
from ocr.adapt.augment import Augmenter
from ocr.adapt.data import LabelledImage
from ocr.adapt.render import Renderer, TextSampler, estimate_style


@dataclass
class Synthesis:
    """A training set's augmenter and renderer of lines like its labels."""

    train: list[LabelledImage]
    renderer: Renderer
    sampler: TextSampler
    augmenter: Augmenter
    #: Pseudo-labelled images: drawn like ``train``, but not the renderer's styles or texts, nor a gate's domain.
    pseudo: list[LabelledImage] = field(default_factory=list)
    #: The network's framing (``crnn.preprocess.frame_rows``), applied to real images before augmentation.
    row_crop: float = 0.0

    @classmethod
    def build(cls, fonts: Sequence[Path], train: list[LabelledImage], height: int, seed: int, allow: str | None,
              pseudo: Sequence[LabelledImage] = (), row_crop: float = 0.0) -> Synthesis:
        """Styles from ``train``'s images, texts like its labels (within ``allow``), augmentation at ``height``."""
        renderer = Renderer(list(fonts), [estimate_style(s.gray) for s in train], seed)
        return cls(train, renderer, TextSampler([s.label for s in train], seed, allow), Augmenter(seed, height),
                   list(pseudo), row_crop)

    def draw_real(self, rng: random.Random) -> tuple[np.ndarray, str]:
        """A labelled (or pseudo-labelled) image, framed as the network reads it, then augmented."""
        i = rng.randrange(len(self.train) + len(self.pseudo))
        s = self.train[i] if i < len(self.train) else self.pseudo[i - len(self.train)]
        return self.augmenter(frame_rows(s.gray, self.row_crop)), s.label

    def draw_synthetic(self, rng: random.Random) -> tuple[np.ndarray, str]:
        """A rendered line of domain-like text, augmented."""
        text = self.sampler.sample()
        return self.augmenter(self.renderer.render(text)), text

    def domain_examples(self) -> list[np.ndarray]:
        """The labelled images and one augmented copy of each: the domain side of a gate (unframed: the gate
        frames what it reads)."""
        return [s.gray for s in self.train] + [self.augmenter(s.gray) for s in self.train]
