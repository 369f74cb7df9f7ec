"""The PP-OCRv6 small text-line recogniser: a PP-LCNetV4 backbone, a light SVTR encoder and a CTC head.

Written from the published architecture (PaddleOCR's ``rec_lcnetv4`` backbone and
``EncoderWithLightSVTR`` neck) in its *deployed* form: every convolution of the
backbone has its BatchNorm folded in (and the re-parameterised depthwise
branches summed into one 3x3 kernel), as in the ONNX file the ``rapidocr`` wheel
ships. :mod:`crnn.onnx_weights` copies that file's tensors onto this module.

Shapes for a ``(N, 3, 48, W)`` input (BGR, scaled to [-1, 1]):

* stem, stride 4 both ways -> ``(N, 96, 12, W/4)``;
* four stages of LCNetV4 blocks; the first block of the last two halves the
  height only -> ``(N, 384, 3, W/4)``;
* average pooling 3 x 2 -> ``(N, 384, 1, W/8)``: one frame per 8 input columns;
* the encoder (1x1 reduce to 120 channels, a 1x7 depthwise convolution, two
  global self-attention blocks) plus a 1x1 skip branch -> ``(N, W/8, 120)``;
* a linear CTC head -> logits ``(N, W/8, 18,710)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Each stage: (input channels, output channels, stride of its first block, squeeze-excitation per block).
STAGES: tuple[tuple[int, int, tuple[int, int], tuple[bool, ...]], ...] = (
    (96, 96, (1, 1), (True,)),
    (96, 96, (1, 1), (False, False)),
    (96, 192, (2, 1), (False, True, False, True, False, True, False)),
    (192, 384, (2, 1), (False, True, False)),
)


class SqueezeExcite(nn.Module):
    """Channel gating from the feature map's mean: 1x1 reduce (/4), ReLU, 1x1 expand, hard sigmoid.

    The hard sigmoid is ``clip(slope * x + 0.5, 0, 1)``: slope 1/6 (PyTorch's) in the LCNet backbones, 0.2
    (Paddle's older definition) in the detector's FPN.
    """

    def __init__(self, channels: int, slope: float = 1 / 6) -> None:
        super().__init__()
        self.slope = slope
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True))))
        if self.slope == 1 / 6:
            return x * F.hardsigmoid(gate)
        return x * (self.slope * gate + 0.5).clamp(0.0, 1.0)


class LCNetBlock(nn.Module):
    """Depthwise 3x3 (token mixing, optional SE), then 1x1 expand x2 -> GELU -> 1x1 compress (channel mixing).

    The channel mixer is residual when the block keeps its shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int], se: bool) -> None:
        super().__init__()
        self.residual = in_channels == out_channels and stride == (1, 1)
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels)
        self.se = SqueezeExcite(in_channels) if se else nn.Identity()
        self.expand = nn.Conv2d(in_channels, 2 * in_channels, 1)
        self.compress = nn.Conv2d(2 * in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.depthwise(x))
        mixed = self.compress(F.gelu(self.expand(x)))
        return x + mixed if self.residual else mixed


class Stem(nn.Module):
    """Stride-4 stem: a 3x3/2 convolution, then a 2x2 max-pool branch beside two 2x2 convolutions, concatenated,
    then a 3x3/2 and a 1x1 convolution (all ReLU). The 2x2 layers pad one row and column after ("same")."""

    def __init__(self, in_channels: int = 3, mid: int = 48, out: int = 96) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid, 3, 2, 1)
        self.conv2a = nn.Conv2d(mid, mid // 2, 2)
        self.conv2b = nn.Conv2d(mid // 2, mid, 2)
        self.conv3 = nn.Conv2d(2 * mid, mid, 3, 2, 1)
        self.conv4 = nn.Conv2d(mid, out, 1)

    @staticmethod
    def _same(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 1, 0, 1))

    @staticmethod
    def _max_2x2(x: torch.Tensor) -> torch.Tensor:
        """2x2 max-pooling with stride 1, as two 1-D maxima: the same numbers, and several times faster than
        ``F.max_pool2d`` on a padded channels-last tensor on CPU."""
        rows = torch.maximum(x[..., :-1, :], x[..., 1:, :])
        return torch.maximum(rows[..., :-1], rows[..., 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        branch = F.relu(self.conv2b(self._same(F.relu(self.conv2a(self._same(x))))))
        pooled = self._max_2x2(self._same(x))
        return F.relu(self.conv4(F.relu(self.conv3(torch.cat([pooled, branch], dim=1)))))


class ConvBNSwish(nn.Sequential):
    """A convolution without bias, BatchNorm and SiLU (swish)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int] = (1, 1), groups: int = 1) -> None:
        padding = (kernel[0] // 2, kernel[1] // 2)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.SiLU(),
        )


class SelfAttentionBlock(nn.Module):
    """Transformer block over the frames: x + attention(norm(x)), then x + MLP(norm(x)) with a swish MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, c / heads); scale 1/sqrt(c / heads)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, c))
        return x + self.fc2(F.silu(self.fc1(self.norm2(x))))


class LightSVTREncoder(nn.Module):
    """Frames ``(N, C, 1, T)`` -> ``(N, T, dim)``: a 1x1 skip branch plus [1x1 reduce, + 1x7 depthwise,
    self-attention blocks, LayerNorm]."""

    def __init__(self, in_channels: int = 384, dim: int = 120, depth: int = 2, heads: int = 8) -> None:
        super().__init__()
        self.skip = ConvBNSwish(in_channels, dim)
        self.reduce = ConvBNSwish(in_channels, dim)
        self.local = ConvBNSwish(dim, dim, (1, 7), groups=dim)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        z = self.reduce(x)
        z = z + self.local(z)
        frames = z.flatten(2).transpose(1, 2)  # (N, H*T, dim); H is 1
        for block in self.blocks:
            frames = block(frames)
        return self.norm(frames) + skip.flatten(2).transpose(1, 2)


class LCNetSVTR(nn.Module):
    """Image ``(N, 3, 48, W)`` (BGR, in [-1, 1]) -> logits ``(N, W/8, num_classes)``; class 0 is the CTC blank."""

    #: Input columns between consecutive output frames.
    FRAME_STRIDE = 8
    #: The backbone pools exactly 3 rows into one: it reads 48-row lines only.
    READS_ANY_HEIGHT = False

    def __init__(self, num_classes: int, in_channels: int = 3, dim: int = 120) -> None:
        super().__init__()
        self.stem = Stem(in_channels)
        self.stages = nn.Sequential(*(
            nn.Sequential(*(
                LCNetBlock(cin if i == 0 else cout, cout, stride if i == 0 else (1, 1), se)
                for i, se in enumerate(ses)
            ))
            for cin, cout, stride, ses in STAGES
        ))
        self.encoder = LightSVTREncoder(STAGES[-1][1], dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's frames ``(N, 384, 1, W/8)``."""
        return F.avg_pool2d(self.stages(self.stem(images)), (3, 2))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything before the CTC head: the encoder's frames ``(N, W/8, dim)`` and the backbone's pooled
        features ``(N, 384, 1, W/8)`` they came from (what the domain gate reads). The graph other runtimes run."""
        conv = self.features(images)
        return self.encoder(conv), conv

    def classify(self, frames: torch.Tensor, classes: torch.Tensor | None = None, out: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """The CTC head: logits for every class, or only for ``classes`` (indices, in that order): the head is most
        of the cost beyond the backbone, and a request with an allowlist can only write a few of its 18,710.

        ``out`` (every class only): a float32 buffer of at least ``frames x classes`` elements to write the logits
        into, returned as a view. Writing 18,710 logits a frame into fresh memory costs about as much as computing
        them (page faults), so a reader that reuses one buffer halves the head's time."""
        if classes is not None:
            return F.linear(frames, self.head.weight.index_select(0, classes), self.head.bias.index_select(0, classes))
        if out is None:
            return self.head(frames)
        rows, count = frames.shape[:-1], self.head.out_features
        flat = out.view(-1)[: frames[..., 0].numel() * count].view(-1, count)
        return torch.addmm(self.head.bias, frames.reshape(-1, frames.shape[-1]), self.head.weight.t(), out=flat
                           ).view(*rows, count)

    def forward(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, W/8, classes)``: :meth:`classify` of :meth:`encode`."""
        return self.classify(self.encoder(self.features(images)), classes)

    @staticmethod
    def sequence_length(width: int) -> int:
        """Number of output frames for an input of ``width`` pixels."""
        return ((width + 1) // 2 + 1) // 2 // 2
