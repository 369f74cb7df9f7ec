"""Reading a fixed list of images with any candidate network, through the same Recognizer as inference."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from crnn import Recognizer
from crnn.charset import Charset
from crnn.decode import Result
from crnn.preprocess import frame_rows, prepare, resized_width
from crnn.weights import LoadedModel
from ocr.eval.metrics import score


def in_training(model: LoadedModel) -> dict:
    """How the job reads a network it is fitting: on PyTorch (no graph exported for weights that change), padded as
    the model was trained (``normalization.min_width``), whatever floor the registered weights read at when served."""
    return {"runtime": "torch", "min_width": model.normalization.min_width}


class Scorer:
    """Reads fixed images with any network of the base model's shape.

    ``charset`` is the adapted model's (it may fold letter case); pass the
    base model's to :meth:`read` or :meth:`predict` to read as zero-shot.
    """

    def __init__(
        self, images: list[np.ndarray], labels: list[str], base: LoadedModel, allow: str | None, charset: Charset,
        precision: str = "fp32",
    ) -> None:
        # Framed and at the model's height already: the recognisers below read them as they are.
        self.prepared = [prepare(im, base.input_height, base.row_crop) for im in images]
        self.labels = labels
        self.base = base
        self.allow = allow
        self.charset = charset
        self.precision = precision

    def read(self, network: torch.nn.Module, charset: Charset | None = None) -> list[Result]:
        """Readings by ``network`` with ``charset`` (default: the adapted model's), in image order."""
        model = replace(self.base, network=copy.deepcopy(network).eval(), charset=charset or self.charset,
                        row_crop=0.0)
        recognizer = Recognizer(model, device="cpu", precision=self.precision,  # type: ignore[arg-type]
                                calibrated=False, **in_training(model))  # raw scores, as an adapted model reports them
        return recognizer.recognize_prepared(self.prepared, self.allow)

    def predict(self, network: torch.nn.Module, charset: Charset | None = None) -> list[str]:
        """Texts read by ``network`` with ``charset`` (default: the adapted model's)."""
        return [r.text for r in self.read(network, charset)]

    def __call__(self, network: torch.nn.Module) -> tuple[float, float]:
        """(loose accuracy, CER) of ``network`` on these images."""
        s = score(self.predict(network), self.labels)
        return s.loose, s.cer

    @property
    def columns(self) -> int:
        """Columns of these images at the model's height: what reading them costs, near enough."""
        return sum(p.pixels.shape[1] for p in self.prepared)

    def features(self, network: torch.nn.Module) -> np.ndarray:
        """Pooled convolutional features (``crnn.gate.pooled_features``) of these images by ``network``."""
        return image_features(network, self.base, self.prepared)


def image_features(network: torch.nn.Module, base: LoadedModel, prepared: list) -> np.ndarray:
    """Pooled convolutional features of prepared images by ``network``, batched as the recogniser batches."""
    model = replace(base, network=copy.deepcopy(network).eval(), fallback=None, row_crop=0.0)
    recognizer = Recognizer(model, device="cpu", precision="fp32", calibrated=False, **in_training(model))
    rows: list[np.ndarray] = [np.empty(0)] * len(prepared)
    for batch in recognizer.batches(prepared):
        _, features = recognizer.forward_features([prepared[i] for i in batch],
                                                 recognizer.run_width(prepared[batch[0]]))
        for i, row in zip(batch, features):
            rows[i] = row
    return np.stack(rows)


def columns(images: list[np.ndarray], height: int, row_crop: float = 0.0) -> int:
    """Columns of grey ``images`` once framed and scaled to ``height`` rows (as :attr:`Scorer.columns` counts
    them)."""
    return sum(resized_width(im.shape[1], frame_rows(im, row_crop).shape[0], height) for im in images)
