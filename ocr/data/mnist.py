"""MNIST IDX files, and turning a digit into the kind of crop the recogniser expects."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

#: White margin (pixels) added around each digit: the model was trained on
#: text with some background around it.
DIGIT_BORDER = 4


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(data[2])
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header promises {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def digit_to_crop(digit: np.ndarray, border: int = DIGIT_BORDER) -> np.ndarray:
    """A light-on-dark MNIST digit -> dark on light with a white border, uint8."""
    inverted = 255 - np.asarray(digit, dtype=np.uint8)
    return np.pad(inverted, border, mode="constant", constant_values=255)


def find_idx_pair(folder: Path) -> tuple[Path, Path] | None:
    """The ``*-images-idx3-ubyte(.gz)`` file of a folder and its labels file, if any."""
    for images in sorted(Path(folder).glob("*-images-idx3-ubyte*")):
        labels = images.with_name(images.name.replace("-images-idx3-", "-labels-idx1-"))
        if labels.is_file():
            return images, labels
    return None
