"""CRAFT (Baek et al., CVPR 2019): a VGG16-BN U-Net that scores every pixel for "character" and "link".

The module names follow the layout of the published ``craft_mlt_25k`` state
dict (``basenet.slice1.0.weight`` ...), so the file loads with ``strict=True``.
The output is at half the input resolution: channel 0 is the region score
(how likely a pixel is the centre of a character), channel 1 the affinity
score (how likely it lies between two characters of the same word).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# VGG16-BN's convolution widths up to conv5_3; "M" is a 2x2 max-pool.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# Where the four backbone slices end, as indices into the flat VGG16-BN layer list
# (each convolution is conv, batch norm, ReLU). Each slice ends on a batch norm,
# before that block's ReLU, exactly as the published weights were cut.
_SLICE_ENDS = (12, 19, 29, 39)


def _vgg16_bn_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for width in _VGG16:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers += [nn.Conv2d(channels, int(width), 3, padding=1), nn.BatchNorm2d(int(width)), nn.ReLU(inplace=True)]
        channels = int(width)
    return layers


def _indexed(layers: list[nn.Module], start: int, stop: int) -> nn.Sequential:
    """A Sequential keeping the flat indices as module names (so state-dict keys match)."""
    block = nn.Sequential()
    for index in range(start, stop):
        block.add_module(str(index), layers[index])
    return block


class Backbone(nn.Module):
    """VGG16-BN features cut into five stages; returns them deepest first."""

    def __init__(self) -> None:
        super().__init__()
        layers = _vgg16_bn_layers()
        starts = (0, *_SLICE_ENDS[:-1])
        self.slice1, self.slice2, self.slice3, self.slice4 = (
            _indexed(layers, a, b) for a, b in zip(starts, _SLICE_ENDS)
        )
        # "fc6/fc7" as convolutions: a stride-1 pool, a dilated 3x3 and a 1x1.
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s1 = self.slice1(x)
        s2 = self.slice2(s1)
        s3 = self.slice3(s2)
        s4 = self.slice4(s3)
        s5 = self.slice5(s4)
        return s5, s4, s3, s2, s1


class UpBlock(nn.Module):
    """1x1 conv squeezing the concatenated skip + upsampled features, then a 3x3 conv."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + mid_channels, mid_channels, kernel_size=1),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CRAFT(nn.Module):
    """Input ``(N, 3, H, W)`` normalised RGB, H and W multiples of 32; output ``(N, 2, H/2, W/2)`` scores in 0..1."""

    def __init__(self) -> None:
        super().__init__()
        self.basenet = Backbone()
        self.upconv1 = UpBlock(1024, 512, 256)
        self.upconv2 = UpBlock(512, 256, 128)
        self.upconv3 = UpBlock(256, 128, 64)
        self.upconv4 = UpBlock(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 2, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s5, s4, s3, s2, s1 = self.basenet(x)
        y = self.upconv1(torch.cat([s5, s4], dim=1))
        for block, skip in ((self.upconv2, s3), (self.upconv3, s2), (self.upconv4, s1)):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        # The published network ends without an activation; its scores are used as they come, in about 0..1.
        return self.conv_cls(y)
