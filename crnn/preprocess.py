"""Image preprocessing as pure functions: bytes/arrays -> grey -> height 64 -> padded, normalised tensor.

Limits (documented in the README; exceeding them raises ``InvalidImageError``):

* ``MAX_PIXELS`` (50 megapixels) on the *decoded* size, checked from the file
  header before any pixel is decoded, so a 60,000 x 60,000 PNG header costs
  nothing;
* ``MAX_ASPECT_RATIO`` (100): neither ``width / height`` nor ``height / width``
  may exceed it. A line of text is rarely beyond 40:1; a crop beyond 100:1 is
  almost surely a mistake, and would cost ``64 * 100`` columns of compute.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from crnn.errors import InvalidImageError
from crnn.specs import Normalization

MAX_PIXELS = 50_000_000
MAX_ASPECT_RATIO = 100.0
#: Bounds of ``frame_rows``' share: cut at most this much of the height from each edge, or add at most this much.
MAX_ROW_CROP = 0.3
MAX_ROW_PAD = 0.5
#: Padded batch widths are multiples of this (also the smallest width).
BUCKET_STEP = 64

ImageInput = bytes | bytearray | memoryview | np.ndarray | Image.Image


@dataclass(frozen=True)
class PreparedImage:
    """A grey image resized to the model's height, plus what maps it back to the input.

    ``pixels`` is ``uint8`` of shape ``(height, width)``; ``scale_x`` converts a
    column of ``pixels`` to a column of the original image. ``min_width`` is
    this line's own padding floor, where it differs from the recogniser's (a
    page's lines, cut by the detector with margins, are read at the model's
    ``page_min_width``); None: the recogniser's.
    """

    pixels: np.ndarray
    original_width: int
    original_height: int
    min_width: int | None = None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def scale_x(self) -> float:
        return self.original_width / self.width


def check_dimensions(width: int, height: int) -> None:
    """Raise ``InvalidImageError`` for zero-sized, oversized or absurdly shaped images."""
    if width <= 0 or height <= 0:
        raise InvalidImageError("empty", f"image has zero size ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            "too_many_pixels",
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {MAX_PIXELS:,}",
        )
    ratio = max(width / height, height / width)
    if ratio > MAX_ASPECT_RATIO:
        raise InvalidImageError(
            "aspect_ratio",
            f"image is {width}x{height}, aspect ratio {ratio:.0f}:1 is over the limit of {MAX_ASPECT_RATIO:.0f}:1",
        )


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric array to uint8 (16-bit by its range, floats as 0..1 or 0..255)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = 65535 if array.dtype.itemsize >= 2 and array.max(initial=0) > 255 else 255
        if array.dtype.itemsize > 2 and array.max(initial=0) > 65535:
            top = int(array.max())
        return np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError("bad_array", "image array holds NaN or infinite values")
        top = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0
        return np.clip(array * (255.0 / top), 0, 255).round().astype(np.uint8)
    raise InvalidImageError("bad_array", f"unsupported image array dtype {array.dtype}")


def _composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32) / 255.0  # (H, W) for grey, (H, W, 1) for colour
    return (color.astype(np.float32) * a + 255.0 * (1.0 - a)).round().astype(np.uint8)


def array_to_pixels(array: np.ndarray, channels: int = 1) -> np.ndarray:
    """Any image array (H, W), (H, W, 1|2|3|4), any numeric dtype, RGB order -> uint8 grey (H, W) when
    ``channels`` is 1, RGB (H, W, 3) when it is 3 (grey images repeated in every channel).

    Transparent pixels are composited onto white.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise InvalidImageError("bad_array", f"unsupported image array shape {array.shape}")
    check_dimensions(int(array.shape[1]), int(array.shape[0]))
    array = _to_uint8(array)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if array.ndim == 2:
        array = np.ascontiguousarray(array)
        return array if channels == 1 else cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if array.shape[2] == 2:  # grey + alpha
        gray = _composite_on_white(array[:, :, 0], array[:, :, 1])
        return gray if channels == 1 else cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    color = np.ascontiguousarray(array[:, :, :3])
    if channels == 1:
        gray = cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)
        return _composite_on_white(gray, array[:, :, 3]) if array.shape[2] == 4 else gray
    return _composite_on_white(color, array[:, :, 3:]) if array.shape[2] == 4 else color


def array_to_gray(array: np.ndarray) -> np.ndarray:
    """Any image array (see :func:`array_to_pixels`) -> uint8 grey (H, W)."""
    return array_to_pixels(array, 1)


def _pil_to_pixels(image: Image.Image, channels: int) -> np.ndarray:
    image = ImageOps.exif_transpose(image) if "exif" in image.info else image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return array_to_pixels(np.array(image, dtype=np.uint16), channels)
    if image.mode in ("I", "F"):
        return array_to_pixels(np.array(image), channels)
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if image.mode in ("PA", "La", "RGBa") else "RGB")
    return array_to_pixels(np.asarray(image), channels)


def decode_bytes(data: bytes | bytearray | memoryview, channels: int = 1) -> np.ndarray:
    """Decode an encoded image file (PNG, JPEG, BMP, TIFF, WebP, GIF ...) to uint8 grey, or RGB with
    ``channels=3``."""
    if len(data) == 0:
        raise InvalidImageError("empty", "image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(bytes(data)))
            width, height = image.size
    except Image.DecompressionBombError as exc:
        message = f"image header declares too many pixels, over the limit of {MAX_PIXELS:,}"
        raise InvalidImageError("too_many_pixels", message) from exc
    except Exception as exc:
        raise InvalidImageError("undecodable", f"not a decodable image ({exc.__class__.__name__})") from exc
    check_dimensions(width, height)  # before decoding a single pixel
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if channels == 1 and image.format == "JPEG" and image.mode in ("RGB", "YCbCr"):
                image.draft("L", image.size)  # decode the luma plane only; same size
            image.load()
            return _pil_to_pixels(image, channels)
    except InvalidImageError:
        raise
    except Exception as exc:  # truncated or corrupt pixel data
        detail = f"{exc.__class__.__name__}: {exc}"
        raise InvalidImageError("undecodable", f"image data is corrupt or truncated ({detail})") from exc


def to_pixels(image: ImageInput, channels: int = 1) -> np.ndarray:
    """Encoded bytes, a numpy array or a PIL image -> uint8 grey (H, W), or RGB (H, W, 3) with ``channels=3``."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(image, channels)
    if isinstance(image, Image.Image):
        check_dimensions(*image.size)
        return _pil_to_pixels(image, channels)
    if isinstance(image, np.ndarray):
        return array_to_pixels(image, channels)
    raise InvalidImageError("bad_array", f"cannot read an image from a {type(image).__name__}")


def to_gray(image: ImageInput) -> np.ndarray:
    """Encoded bytes, a numpy array or a PIL image -> uint8 grey (H, W)."""
    return to_pixels(image, 1)


def resized_width(width: int, height: int, target_height: int) -> int:
    """Width after scaling to ``target_height`` with the aspect ratio kept (at least 1)."""
    return max(1, math.ceil(target_height * width / height))


def resize_to_height(gray: np.ndarray, target_height: int) -> np.ndarray:
    """Scale a grey (or colour) image to ``target_height`` rows keeping its aspect ratio."""
    height, width = gray.shape[:2]
    new_width = resized_width(width, height, target_height)
    if (new_width, target_height) == (width, height):
        return gray
    shrinking = target_height < height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (new_width, target_height), interpolation=interpolation)


def frame_rows(gray: np.ndarray, row_crop: float) -> np.ndarray:
    """The image with ``row_crop`` of its height cut from the top and from the bottom (a negative share adds
    that many rows of edge pixels instead); 0 returns it unchanged.

    An adapted model may read its domain better framed this way: plate text sits between a state name and a
    slogan, and receipt lines are cut tight to their letters (docs/studies/adapt.md, "Framing").
    """
    if not row_crop:
        return gray
    if not -MAX_ROW_PAD <= row_crop <= MAX_ROW_CROP:
        raise ValueError(f"row_crop must be between {-MAX_ROW_PAD} and {MAX_ROW_CROP}, got {row_crop}")
    rows = int(round(abs(row_crop) * gray.shape[0]))
    if rows == 0 or (row_crop > 0 and gray.shape[0] - 2 * rows < 2):
        return gray  # too few rows to cut any
    if row_crop > 0:
        return gray[rows : gray.shape[0] - rows]
    return cv2.copyMakeBorder(gray, rows, rows, 0, 0, cv2.BORDER_REPLICATE)


def framed_height(target_height: int, row_crop: float) -> int:
    """Rows to prepare an image at so that ``frame_rows`` leaves at least ``target_height`` of them (no
    upscaling of a cropped band)."""
    return max(target_height, math.ceil(target_height / (1.0 - 2.0 * row_crop))) if row_crop > 0 else target_height


def prepare(image: ImageInput, target_height: int, row_crop: float = 0.0, channels: int = 1) -> PreparedImage:
    """Decode (grey, or RGB with ``channels=3``), frame (``frame_rows``) and resize one image; raises
    ``InvalidImageError`` with the reason if it can't."""
    gray = to_pixels(image, channels)
    return PreparedImage(resize_to_height(frame_rows(gray, row_crop), target_height), gray.shape[1], gray.shape[0])


def bucket_width(width: int, step: int = BUCKET_STEP) -> int:
    """The padded width of an image ``width`` pixels wide: the next multiple of ``step``."""
    return max(step, math.ceil(width / step) * step)


def padded_width(width: int, normalization: Normalization, floor: int | None = None) -> int:
    """The width an image ``width`` pixels wide is run at: its bucket, and at least ``floor`` (None: the
    normalisation's ``min_width``)."""
    return max(bucket_width(width), normalization.min_width if floor is None else floor)


def pad_right(pixels: np.ndarray, width: int, value: float | None = None) -> np.ndarray:
    """Pad to ``width`` columns on the right by repeating the last column, or with ``value``."""
    missing = width - pixels.shape[1]
    if missing < 0:
        raise ValueError(f"cannot pad an image {pixels.shape[1]} wide to {width}")
    if missing == 0:
        return pixels
    spec = ((0, 0), (0, missing), *((0, 0),) * (pixels.ndim - 2))
    return np.pad(pixels, spec, mode="edge") if value is None else np.pad(pixels, spec, constant_values=value)


def stack_batch(pixels: Sequence[np.ndarray], width: int, normalization: Normalization) -> np.ndarray:
    """Pad every image to ``width``, normalise and stack: ``(N, C, H, width)`` float32, with C and the channel
    order the model's (``Normalization.channels``, ``.bgr``); grey images are repeated into every channel.

    The one batch layout for inference and training.
    """
    pad = normalization.pad_value
    batch = np.stack([pad_right(normalize(p, normalization), width, pad) if pad is not None
                      else normalize(pad_right(p, width), normalization) for p in pixels])
    if batch.ndim == 3:  # grey (N, H, W)
        batch = batch[:, None]
        return batch if normalization.channels == 1 else np.repeat(batch, normalization.channels, axis=1)
    if normalization.channels == 1:
        raise ValueError("colour pixels for a model that reads grey")
    batch = batch.transpose(0, 3, 1, 2)  # (N, 3, H, W), RGB
    return np.ascontiguousarray(batch[:, ::-1] if normalization.bgr else batch)


def normalize(pixels: np.ndarray, normalization: Normalization) -> np.ndarray:
    """uint8 -> float32 scaled as ``(x / 255 - mean) / std``."""
    return (pixels.astype(np.float32) / 255.0 - normalization.mean) / normalization.std


def invert(gray: np.ndarray) -> np.ndarray:
    """The image in the other polarity: light text on dark becomes dark on light."""
    return 255 - gray


def stretch_contrast(gray: np.ndarray, target: float = 0.5) -> np.ndarray:
    """Stretch a low-contrast grey image so its 10th-90th percentile band spans most of 0..255.

    Contrast is measured as ``(p90 - p10) / max(10, p90 + p10)``; images already
    at or above ``target`` are returned unchanged.
    """
    low, high = np.percentile(gray, [10, 90])
    if (high - low) / max(10.0, high + low) >= target:
        return gray
    gain = 200.0 / max(10.0, high - low)
    return np.clip((gray.astype(np.float32) - low + 25.0) * gain, 0, 255).astype(np.uint8)
