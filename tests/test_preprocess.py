"""Preprocessing edge cases: formats, bit depths, alpha, odd shapes, hostile headers."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from crnn.errors import InvalidImageError
from crnn.preprocess import (
    MAX_ASPECT_RATIO,
    MAX_PIXELS,
    bucket_width,
    decode_bytes,
    frame_rows,
    framed_height,
    normalize,
    pad_right,
    prepare,
    resize_to_height,
    stretch_contrast,
    to_gray,
)
from crnn.specs import Normalization
from tests.conftest import encode


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` but carries only a token of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_decodes_common_formats(fmt: str) -> None:
    array = np.full((20, 50), 200, np.uint8)
    array[5:15, 10:40] = 30
    gray = decode_bytes(encode(array, fmt))
    assert gray.shape == (20, 50) and gray.dtype == np.uint8
    assert abs(int(gray[10, 25]) - 30) < 12 and abs(int(gray[1, 1]) - 200) < 12


def test_sixteen_bit_png_is_scaled_to_eight_bits() -> None:
    array = np.full((10, 30), 60000, np.uint16)
    array[:, :10] = 1000
    gray = decode_bytes(encode(array, "PNG"))
    assert gray.dtype == np.uint8
    assert gray[0, 20] == round(60000 * 255 / 65535) and gray[0, 0] == round(1000 * 255 / 65535)


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((10, 20, 4), np.uint8)  # black ink ...
    rgba[:, :10, 3] = 255  # ... opaque on the left, transparent on the right
    gray = decode_bytes(encode(rgba, "PNG"))
    assert gray[0, 0] == 0 and gray[0, 15] == 255
    la = np.stack([np.zeros((10, 20), np.uint8), rgba[:, :, 3]], axis=2)
    assert to_gray(la)[0, 15] == 255


def test_palette_image_with_transparency() -> None:
    image = Image.new("P", (20, 10), 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    image.info["transparency"] = 0
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    assert decode_bytes(buffer.getvalue())[0, 0] == 255


def test_arrays_of_any_channel_count_and_dtype() -> None:
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[..., 0] = 255
    assert to_gray(rgb)[0, 0] == 76  # luma of pure red
    assert to_gray(np.ones((8, 16), np.float32))[0, 0] == 255
    assert to_gray(np.ones((8, 16, 1), bool))[0, 0] == 255
    assert to_gray(np.full((8, 16), 65535, np.uint16))[0, 0] == 255


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"not an image at all", "undecodable"),
        (png_header_only(60000, 60000), "too_many_pixels"),
        (png_header_only(10_000, 20), "aspect_ratio"),
    ],
)
def test_bad_bytes_raise_one_error_type_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_bytes(data)
    assert info.value.reason == reason
    assert str(info.value)


def test_truncated_files_are_undecodable() -> None:
    data = encode(np.random.default_rng(0).integers(0, 255, (40, 80), dtype=np.uint8), "PNG")
    with pytest.raises(InvalidImageError) as info:
        decode_bytes(data[: len(data) // 2])
    assert info.value.reason == "undecodable"


def test_limits_are_the_documented_ones() -> None:
    assert MAX_PIXELS == 50_000_000 and MAX_ASPECT_RATIO == 100
    with pytest.raises(InvalidImageError, match="zero size"):
        to_gray(np.zeros((0, 5), np.uint8))
    with pytest.raises(InvalidImageError) as info:
        to_gray(np.zeros((4, 4, 5), np.uint8))
    assert info.value.reason == "bad_array"
    with pytest.raises(InvalidImageError):
        to_gray(np.full((4, 4), np.nan, np.float32))


def test_one_pixel_wide_tall_and_mnist_sized_crops_prepare() -> None:
    thin = prepare(np.zeros((40, 1), np.uint8), 64)
    assert thin.pixels.shape == (64, 2)
    tall = prepare(np.zeros((300, 30), np.uint8), 64)
    assert tall.pixels.shape == (64, 7)
    digit = prepare(np.zeros((36, 36), np.uint8), 64)
    assert digit.pixels.shape == (64, 64) and digit.original_width == 36


def test_resize_keeps_aspect_and_height() -> None:
    out = resize_to_height(np.zeros((32, 100), np.uint8), 64)
    assert out.shape == (64, 200)
    out = resize_to_height(np.zeros((128, 100), np.uint8), 64)
    assert out.shape == (64, 50)


def test_pad_right_repeats_last_column_and_buckets() -> None:
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    padded = pad_right(pixels, 5)
    assert padded.tolist() == [[0, 1, 2, 2, 2], [3, 4, 5, 5, 5]]
    assert bucket_width(1) == 64 and bucket_width(64) == 64 and bucket_width(65) == 128
    with pytest.raises(ValueError):
        pad_right(pixels, 2)


def test_normalize_to_minus_one_one() -> None:
    out = normalize(np.array([[0, 255]], np.uint8), Normalization(0.5, 0.5))
    assert out.dtype == np.float32 and out.tolist() == [[-1.0, 1.0]]


def test_stretch_contrast_only_touches_flat_images() -> None:
    flat = np.full((10, 10), 160, np.uint8)
    flat[:, :3] = 100
    stretched = stretch_contrast(flat)
    assert int(stretched.max()) - int(stretched.min()) > 2 * 60
    crisp = np.zeros((10, 10), np.uint8)
    crisp[:, 5:] = 255
    assert stretch_contrast(crisp) is crisp


def test_frame_rows_cuts_or_adds_the_same_share_at_top_and_bottom() -> None:
    gray = np.repeat(np.arange(100, dtype=np.uint8)[:, None], 30, axis=1)  # each row holds its index
    assert frame_rows(gray, 0.0) is gray
    cut = frame_rows(gray, 0.15)
    assert cut.shape == (70, 30) and cut[0, 0] == 15 and cut[-1, 0] == 84
    padded = frame_rows(gray, -0.1)
    assert padded.shape == (120, 30)
    assert (padded[:10] == 0).all() and (padded[-10:] == 99).all()  # edge rows repeated
    assert (padded[10:110] == gray).all()
    assert frame_rows(gray[:3], 0.3).shape == (3, 30)  # too few rows to cut: unchanged
    with pytest.raises(ValueError, match="row_crop"):
        frame_rows(gray, 0.5)


def test_a_cropping_view_is_prepared_tall_enough_that_its_band_is_not_upscaled() -> None:
    assert framed_height(64, 0.0) == 64 and framed_height(64, -0.1) == 64
    assert framed_height(64, 0.15) == 92  # 92 rows less 2 x 14 leaves 64
    assert frame_rows(np.zeros((92, 10), np.uint8), 0.15).shape[0] == 64
    image = np.full((160, 320), 200, np.uint8)
    assert prepare(image, 64, 0.15).pixels.shape == (64, 183)  # the band of 112 rows, at 64
