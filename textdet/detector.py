"""The ``Detector``: owns a text detector (PP-OCRv6's DB or CRAFT) on one device and finds text lines in grey
page images."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import torch

from crnn.graph import detector_graph
from crnn.runtime import (
    Precision,
    Runtime,
    autocast_dtype,
    engine_for,
    resolve_device,
    resolve_precision,
    resolve_runtime,
)
from crnn.weights import load_verified_weights
from textdet.boxes import group_lines, reading_order, stray_glyphs, word_boxes
from textdet.db_boxes import db_boxes
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS, DetectionConfig, DetectorSpec


class Detector:
    """Find text lines in whole images with a registered detector (``textdet.specs``).

    Each page is scaled (``DetectionConfig``: enlarged until its shorter side
    is ``min_side``, then shrunk until its longer side is at most ``max_side``
    and its area at most ``max_pixels``), padded to a multiple of 32 and run
    alone; boxes come back in the page's own pixel coordinates, in reading
    order. ``config`` None takes the detector's own defaults. ``runtime`` runs
    the network as ``Recognizer``'s does (``auto``: the fastest installed
    runtime for this CPU at fp32, the same maps).
    """

    def __init__(
        self,
        name: str = DEFAULT_DETECTOR,
        device: str = "auto",
        precision: Precision = "auto",
        config: DetectionConfig | None = None,
        runtime: Runtime = "auto",
        threads: int | None = None,
    ) -> None:
        if name not in DETECTOR_SPECS:
            raise ValueError(f"unknown detector {name!r}; known: {sorted(DETECTOR_SPECS)}")
        self.spec: DetectorSpec = DETECTOR_SPECS[name]
        config = config or self.spec.config
        if config.max_side < 32:
            raise ValueError(f"max_side must be at least 32, not {config.max_side}")
        self.config = config
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, self.spec.bf16_validated)
        if self.precision == "int8":
            raise ValueError("the detector runs in fp32 or bf16, not int8")
        network = self.spec.build()
        load_verified_weights(network, self.spec.weights_file(), self.spec.sha256, self.spec.name,
                              self.spec.weights_format)
        self.network = network.eval().to(self.device).to(memory_format=torch.channels_last)
        for p in self.network.parameters():
            p.requires_grad_(False)
        self.engine, self.runtime = engine_for(
            runtime, resolve_runtime(runtime, self.device, self.precision),
            partial(detector_graph, network, self.spec.multiple), self.precision, threads, self.spec.name)
        self._mean = np.array(self.spec.mean, np.float32).reshape(3, 1, 1)
        self._std = np.array(self.spec.std, np.float32).reshape(3, 1, 1)

    def scale(self, width: int, height: int) -> float:
        """The factor a ``width`` x ``height`` page is resized by before detection."""
        grow = max(1.0, self.config.min_side / min(width, height))
        return min(grow, self.config.max_side / max(width, height), (self.config.max_pixels / (width * height)) ** 0.5)

    def network_input(self, gray: np.ndarray) -> tuple[torch.Tensor, float]:
        """A grey page as the network's ``(1, 3, H, W)`` input, and the scale applied to it."""
        height, width = gray.shape
        scale = self.scale(width, height)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        rows, cols = gray.shape
        m = self.spec.multiple
        padded = np.zeros((3, -(-rows // m) * m, -(-cols // m) * m), np.float32)  # zero: the mean colour
        padded[:, :rows, :cols] = (gray.astype(np.float32)[None] - self._mean) / self._std
        return torch.from_numpy(padded)[None], scale

    @torch.inference_mode()
    def score_maps(self, gray: np.ndarray) -> tuple[np.ndarray, float]:
        """The network's maps ``(C, H, W)`` (float32, 1/stride of the scaled page) and the page's scale: CRAFT's
        region and affinity scores, DB's text probability."""
        batch, scale = self.network_input(gray)
        if self.engine is not None:
            return self.engine(batch.numpy())[0][0], scale
        batch = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.precision)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            maps = self.network(batch)
        return maps[0].float().cpu().numpy(), scale

    def detect(self, gray: np.ndarray) -> list[np.ndarray]:
        """Line boxes (``(4, 2)`` float32 corners, clockwise from top-left) in page pixels, in reading order."""
        maps, scale = self.score_maps(gray)
        to_page = self.spec.stride / scale
        rows, cols = gray.shape
        if self.spec.kind == "db":
            found = [box for box, _ in db_boxes(maps[0], self.config.db)]
        else:
            found = word_boxes(maps[0], maps[1], self.config.thresholds)
        boxes = [np.clip(box * to_page, 0, [cols, rows]).astype(np.float32) for box in found]
        if self.spec.kind == "craft":
            boxes = group_lines(boxes, self.config.grouping)  # CRAFT finds words; DB finds lines
        return [boxes[i] for i in reading_order(boxes)]

    def stray_glyphs(self, gray: np.ndarray, lines: list[np.ndarray]) -> list[np.ndarray]:
        """Candidate lone characters outside ``lines`` (empty when glyph recovery is off)."""
        return stray_glyphs(gray, lines, self.config.glyphs) if self.config.glyphs else []
