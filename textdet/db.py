"""The PP-OCRv6 small text detector: a PP-LCNetV4 backbone, a large-kernel FPN and a DB head.

Written from the published architecture (PaddleOCR's ``PPLCNetV4`` in detection
mode, the ``RepLKFPN`` neck and the differentiable-binarization head of Liao et
al., AAAI 2020) in its *deployed* form, as in the ONNX file the ``rapidocr``
wheel ships: BatchNorms folded into the convolutions, the re-parameterised
depthwise branches summed into one 3x3 (backbone) or 7x7 (neck) kernel, and
only the probability branch of the head (the threshold branch is a training
aid). :mod:`crnn.onnx_weights` copies that file's tensors onto this module.

Shapes for a ``(N, 3, H, W)`` input (BGR, scaled to [-1, 1]; H and W multiples of 32):

* the recogniser's stride-4 stem (24 then 48 channels) -> ``(N, 48, H/4, W/4)``;
* four stages of LCNetV4 blocks, each but the first halving both sides:
  48, 96, 192 and 384 channels at 1/4, 1/8, 1/16 and 1/32 of the input;
* the FPN: each level to 96 channels (1x1 + squeeze-excitation), summed top-down
  with nearest upsampling, each smoothed (7x7 depthwise, 1x1 to 24 channels,
  squeeze-excitation), upsampled to 1/4 and concatenated -> ``(N, 96, H/4, W/4)``;
* the head: 3x3 convolution to 24 channels, two 2x2 transposed convolutions and a
  sigmoid -> ``(N, 1, H, W)``, each pixel's probability of lying inside a text
  line's shrunk core (:mod:`textdet.db_boxes` turns it into boxes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crnn.lcnet_svtr import LCNetBlock, SqueezeExcite, Stem

#: Each stage: (input channels, output channels, stride of its first block, squeeze-excitation per block).
STAGES: tuple[tuple[int, int, int, tuple[bool, ...]], ...] = (
    (48, 48, 1, (True, False)),
    (48, 96, 2, (False, True, False)),
    (96, 192, 2, (False, True, False, True, False)),
    (192, 384, 2, (False, True, False)),
)
#: The hard-sigmoid slope of the FPN's squeeze-excitation gates (Paddle's older definition).
FPN_GATE_SLOPE = 0.2


class Lateral(nn.Module):
    """A backbone level to the FPN's width: 1x1 convolution, plus its squeeze-excited self."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.se = SqueezeExcite(out_channels, FPN_GATE_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x + self.se(x)


class Smooth(nn.Module):
    """A merged level to a quarter of the width: large depthwise kernel, 1x1 convolution, plus its squeeze-excited
    self."""

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels // 4, 1, bias=False)
        self.se = SqueezeExcite(channels // 4, FPN_GATE_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pointwise(self.depthwise(x))
        return x + self.se(x)


class LargeKernelFPN(nn.Module):
    """Four backbone levels (finest first) -> one ``(N, channels, H/4, W/4)`` map; levels are built coarsest first."""

    def __init__(self, in_channels: tuple[int, ...], channels: int = 96) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(Lateral(c, channels) for c in reversed(in_channels))
        self.smooths = nn.ModuleList(Smooth(channels) for _ in in_channels)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        lateral = [layer(x) for layer, x in zip(self.laterals, reversed(levels))]
        merged = [lateral[0]]
        for x in lateral[1:]:
            merged.append(x + F.interpolate(merged[-1], scale_factor=2.0, mode="nearest"))
        smoothed = [layer(x) for layer, x in zip(self.smooths, merged)]
        last = len(smoothed) - 1
        return torch.cat([F.interpolate(x, scale_factor=2.0 ** (last - i), mode="nearest") if i < last else x
                          for i, x in enumerate(smoothed)], dim=1)


class DBHead(nn.Module):
    """The probability branch: 3x3 convolution (/4 channels), ReLU, two 2x2 stride-2 transposed convolutions
    (ReLU between), sigmoid: from 1/4 of the input back to its full size."""

    def __init__(self, channels: int = 96) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels // 4, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(channels // 4, channels // 4, 2, 2)
        self.up2 = nn.ConvTranspose2d(channels // 4, 1, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up2(F.relu(self.up1(F.relu(self.conv(x))))))


class DBNet(nn.Module):
    """Image ``(N, 3, H, W)`` (BGR in [-1, 1], sides multiples of 32) -> text probability ``(N, 1, H, W)``."""

    def __init__(self, fpn_channels: int = 96) -> None:
        super().__init__()
        self.stem = Stem(3, 24, 48)
        self.stages = nn.ModuleList(
            nn.Sequential(*(
                LCNetBlock(cin if i == 0 else cout, cout, (stride, stride) if i == 0 else (1, 1), se)
                for i, se in enumerate(ses)
            ))
            for cin, cout, stride, ses in STAGES
        )
        self.neck = LargeKernelFPN(tuple(cout for _, cout, _, _ in STAGES), fpn_channels)
        self.head = DBHead(fpn_channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return self.head(self.neck(levels))
