"""The None-VGG-BiLSTM-CTC recogniser network (EasyOCR's ``generation 2`` CRNN).

Parameter names match EasyOCR's checkpoints (after stripping ``module.``), so
their state dicts load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn


def _vgg_features(in_channels: int, out_channels: int) -> nn.Sequential:
    """VGG-style extractor: height 64 -> 3 rows, width W -> W/4 - 1 columns."""
    c = [out_channels // 8, out_channels // 4, out_channels // 2, out_channels]
    return nn.Sequential(
        nn.Conv2d(in_channels, c[0], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),  # 0-2
        nn.Conv2d(c[0], c[1], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2, 2),  # 3-5
        nn.Conv2d(c[1], c[2], 3, 1, 1), nn.ReLU(True),  # 6-7
        nn.Conv2d(c[2], c[2], 3, 1, 1), nn.ReLU(True), nn.MaxPool2d((2, 1), (2, 1)),  # 8-10
        nn.Conv2d(c[2], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),  # 11-13
        nn.Conv2d(c[3], c[3], 3, 1, 1, bias=False), nn.BatchNorm2d(c[3]), nn.ReLU(True),  # 14-16
        nn.MaxPool2d((2, 1), (2, 1)),  # 17
        nn.Conv2d(c[3], c[3], 2, 1, 0), nn.ReLU(True),  # 18-19
    )


class _FeatureExtraction(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.ConvNet = _vgg_features(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ConvNet(x)


class BidirectionalLSTM(nn.Module):
    """A bidirectional LSTM followed by a linear projection of both directions."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(hidden_size * 2, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.linear(out)


class CRNN(nn.Module):
    """Image ``(N, 1, 64, W)`` in [-1, 1] -> logits ``(N, W/4 - 1, num_classes)``."""

    #: Input columns between consecutive output frames.
    FRAME_STRIDE = 4
    #: Its last feature map is averaged over height, so it reads lines of any height.
    READS_ANY_HEIGHT = True

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        feature_channels: int = 256,
        hidden_size: int = 256,
    ) -> None:
        super().__init__()
        self.FeatureExtraction = _FeatureExtraction(in_channels, feature_channels)
        self.SequenceModeling = nn.Sequential(
            BidirectionalLSTM(feature_channels, hidden_size, hidden_size),
            BidirectionalLSTM(hidden_size, hidden_size, hidden_size),
        )
        self.Prediction = nn.Linear(hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.FeatureExtraction(images)  # (N, C, 3, T); bf16/fp16 under autocast
        sequence = features.float().mean(dim=2).transpose(1, 2)  # (N, T, C)
        # The sequence model always runs in fp32: in bf16 it cost accuracy on the
        # shared sets (0.35 points on CUTE80) and saved little time.
        with torch.autocast(images.device.type, enabled=False):
            return self.Prediction(self.SequenceModeling(sequence))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything before the CTC head: the BiLSTMs' frames ``(N, T, hidden)`` and the convolutional features
        ``(N, C, 3, T)`` they came from (what the domain gate reads). The graph other runtimes run."""
        features = self.FeatureExtraction(images)
        with torch.autocast(images.device.type, enabled=False):
            return self.SequenceModeling(features.float().mean(dim=2).transpose(1, 2)), features

    def classify(self, frames: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """The CTC head: logits for every class, or only for ``classes`` (indices, in that order)."""
        if classes is None:
            return self.Prediction(frames)
        weight, bias = self.Prediction.weight, self.Prediction.bias
        return nn.functional.linear(frames, weight.index_select(0, classes), bias.index_select(0, classes))

    @staticmethod
    def sequence_length(width: int) -> int:
        """Number of output frames for an input of ``width`` pixels."""
        return width // 4 - 1
