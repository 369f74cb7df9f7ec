"""The ``Detector``: owns CRAFT on one device and finds text lines in grey page images."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from crnn.runtime import Precision, autocast_dtype, resolve_device, resolve_precision
from crnn.weights import load_verified_weights
from textdet.boxes import (
    BoxThresholds,
    GlyphRecovery,
    LineGrouping,
    group_lines,
    reading_order,
    stray_glyphs,
    word_boxes,
)
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS, DetectorSpec

#: Pages are scaled down so that their longer side is at most this many pixels before detection ...
DEFAULT_MAX_SIDE = 2560
#: ... and they hold at most this many pixels (the detector's time grows with the area; docs/detection.md).
DEFAULT_MAX_PIXELS = 600_000


@dataclass(frozen=True)
class DetectionConfig:
    """How pages are scaled and how score maps become lines."""

    max_side: int = DEFAULT_MAX_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    thresholds: BoxThresholds = field(default_factory=BoxThresholds)
    grouping: LineGrouping = field(default_factory=LineGrouping)
    #: Look for lone characters CRAFT misses (None: don't).
    glyphs: GlyphRecovery | None = field(default_factory=GlyphRecovery)


class Detector:
    """Find text lines in whole images with CRAFT.

    Each page is scaled so its longer side is at most ``config.max_side`` and
    its area at most ``config.max_pixels`` (never enlarged), padded to a
    multiple of 32 and run alone; boxes come back in the page's own pixel
    coordinates, in reading order.
    """

    def __init__(
        self,
        name: str = DEFAULT_DETECTOR,
        device: str = "auto",
        precision: Precision = "auto",
        config: DetectionConfig = DetectionConfig(),
    ) -> None:
        if name not in DETECTOR_SPECS:
            raise ValueError(f"unknown detector {name!r}; known: {sorted(DETECTOR_SPECS)}")
        if config.max_side < 32:
            raise ValueError(f"max_side must be at least 32, not {config.max_side}")
        self.spec: DetectorSpec = DETECTOR_SPECS[name]
        self.config = config
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, self.spec.bf16_validated)
        if self.precision == "int8":
            raise ValueError("the detector runs in fp32 or bf16, not int8")
        network = self.spec.build()
        load_verified_weights(network, self.spec.weights_file(), self.spec.sha256, self.spec.name)
        self.network = network.eval().to(self.device).to(memory_format=torch.channels_last)
        for p in self.network.parameters():
            p.requires_grad_(False)
        self._mean = np.array(self.spec.mean, np.float32).reshape(3, 1, 1)
        self._std = np.array(self.spec.std, np.float32).reshape(3, 1, 1)

    def scale(self, width: int, height: int) -> float:
        """The factor a ``width`` x ``height`` page is resized by before detection (at most 1)."""
        return min(1.0, self.config.max_side / max(width, height), (self.config.max_pixels / (width * height)) ** 0.5)

    def network_input(self, gray: np.ndarray) -> tuple[torch.Tensor, float]:
        """A grey page as the network's ``(1, 3, H, W)`` input, and the scale applied to it."""
        height, width = gray.shape
        scale = self.scale(width, height)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        rows, cols = gray.shape
        m = self.spec.multiple
        padded = np.zeros((3, -(-rows // m) * m, -(-cols // m) * m), np.float32)  # zero: the mean colour
        padded[:, :rows, :cols] = (gray.astype(np.float32)[None] - self._mean) / self._std
        return torch.from_numpy(padded)[None], scale

    @torch.inference_mode()
    def score_maps(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Region and affinity maps (float32, 1/stride of the scaled page) and the page's scale."""
        batch, scale = self.network_input(gray)
        batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.precision)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            maps = self.network(batch)
        maps = maps[0].float().cpu().numpy()
        return maps[0], maps[1], scale

    def detect(self, gray: np.ndarray) -> list[np.ndarray]:
        """Line boxes (``(4, 2)`` float32 corners, clockwise from top-left) in page pixels, in reading order."""
        region, affinity, scale = self.score_maps(gray)
        to_page = self.spec.stride / scale
        words = [box * to_page for box in word_boxes(region, affinity, self.config.thresholds)]
        rows, cols = gray.shape
        words = [np.clip(box, 0, [cols, rows]).astype(np.float32) for box in words]
        lines = group_lines(words, self.config.grouping)
        return [lines[i] for i in reading_order(lines)]

    def stray_glyphs(self, gray: np.ndarray, lines: list[np.ndarray]) -> list[np.ndarray]:
        """Candidate lone characters outside ``lines`` (empty when glyph recovery is off)."""
        return stray_glyphs(gray, lines, self.config.glyphs) if self.config.glyphs else []
