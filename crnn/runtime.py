"""Choosing a device, a numeric precision and a thread count for inference."""

from __future__ import annotations

from typing import Literal

import torch

from crnn import quantize

Precision = Literal["fp32", "bf16", "fp16", "int8", "auto"]
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the first CUDA GPU if there is one, else the CPU; other values as torch reads them."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def cpu_supports_bf16() -> bool:
    """True where oneDNN has fast bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(
    precision: Precision, device: torch.device, bf16_validated: bool, int8_validated: bool = False
) -> str:
    """The precision actually used.

    On the CPU ``auto`` picks int8 where the CPU has int8 dot products (VNNI)
    *and* int8 was measured to keep this model's accuracy (``int8_validated``:
    validated, with shipped activation ranges); else bf16 where the hardware
    runs it fast and the spec says bf16 keeps accuracy (``bf16_validated``);
    else fp32. An explicit precision the device cannot run is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if device.type == "cpu":
        if precision == "fp16":
            raise ValueError("fp16 is not supported on the CPU; use bf16, int8 or fp32")
        if precision == "int8" and not quantize.int8_supported():
            raise ValueError("int8 needs PyTorch's x86 quantized engine, which this build lacks; use bf16 or fp32")
        if precision == "auto":
            if int8_validated and quantize.int8_supported() and quantize.cpu_has_vnni():
                return "int8"
            return "bf16" if bf16_validated and cpu_supports_bf16() else "fp32"
        return precision
    if precision == "int8":
        raise ValueError("int8 runs on the CPU only; on a GPU use bf16, fp16 or fp32")
    if precision == "auto":
        return "bf16" if bf16_validated and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype for a resolved precision (None for fp32)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
