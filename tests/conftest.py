"""Shared fixtures: the real model (loaded once) and the optional ../shared/data sets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crnn import Recognizer
from crnn.weights import LoadedModel, load_model
from ocr.config import AdaptConfig

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
EXAMPLES = ROOT / "examples"


def tiny_config(data: Path, out: Path, **overrides) -> AdaptConfig:
    """An ``ocr adapt`` run of 3 steps; on english_g2 (cheaper to read than the default base, and the height
    choice is its) unless ``base_model`` says otherwise."""
    base = {"data": data, "out": out, "max_steps": 3, "max_minutes": 2.0, "batch_size": 4, "seed": 1,
            "base_model": "english_g2"}
    return AdaptConfig(**{**base, **overrides})


def shared_set(name: str) -> Path:
    """Path of a shared data set, or skip the test when it is absent (a user's clone has none)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data set {name} not available at {path}")
    return path


@pytest.fixture(scope="session")
def loaded_model() -> LoadedModel:
    return load_model("english_g2")


@pytest.fixture(scope="session")
def recognizer(loaded_model: LoadedModel) -> Recognizer:
    return Recognizer(loaded_model, device="cpu", precision="fp32")


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """Encode an array as an image file in memory."""
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt) if mode else Image.fromarray(array).save(
        buffer, format=fmt
    )
    return buffer.getvalue()


def example_bytes(index: int = 0) -> bytes:
    return sorted((EXAMPLES / "images").glob("*.png"))[index].read_bytes()
