"""Choosing a device, a numeric precision, an inference runtime and a thread count for inference."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from crnn import quantize

if TYPE_CHECKING:
    from crnn.graph import GraphSpec

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


Runtime = Literal["auto", "torch", "onnxruntime", "openvino"]
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
#: The engine of each runtime's Python package (what must be importable to use it), and the extra that installs it.
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
RUNTIME_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: CPU kinds, from the instruction sets that decide which kernels are fast (``cpu_kind``).
CPU_KINDS = ("amx", "avx512_bf16", "avx512", "avx2", "baseline")
#: ``runtime="auto"`` on the CPU: the installed runtimes in order of measured fp32 lines/s per CPU kind (texts are
#: identical at fp32, so this is a speed choice only). OpenVINO first: on 600 IIIT5K crops it read 1.11x ONNX
#: Runtime's lines/s on an AMD EPYC with AVX512-BF16 (issue 49's probe) and 1.0-1.1x on an AMD EPYC with AVX2 only
#: (docs/export.md, "Runtimes"); PyTorch last. The AMX Xeon and plain AVX512 kinds were not measured: the same order.
RUNTIME_PREFERENCE: dict[str, tuple[str, ...]] = {kind: ("openvino", "onnxruntime", "torch") for kind in CPU_KINDS}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty where that file is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_kind(flags: frozenset[str] | None = None) -> str:
    """The CPU's kind for runtime and precision choices: ``amx`` (AMX tiles for bf16 and int8), ``avx512_bf16``,
    ``avx512`` (AVX512F, with or without VNNI), ``avx2``, or ``baseline``. Where /proc/cpuinfo is missing, PyTorch's
    own reading of the CPU decides between AVX512, AVX2 and baseline."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        capability = str(torch.backends.cpu.get_cpu_capability()).lower()
        return "avx512" if "avx512" in capability else "avx2" if "avx2" in capability else "baseline"
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "baseline"


def runtime_installed(runtime: str) -> bool:
    """Whether ``runtime``'s package can be imported (PyTorch always can)."""
    package = RUNTIME_PACKAGES.get(runtime)
    return package is None or importlib.util.find_spec(package) is not None


def resolve_runtime(runtime: Runtime, device: torch.device, precision: str) -> str:
    """The runtime actually used.

    ``auto``: on the CPU at fp32, the first installed runtime of ``RUNTIME_PREFERENCE`` for this CPU's kind (the
    texts are the same on each); PyTorch on a GPU and at any other precision (bf16 and int8 were validated on
    PyTorch's kernels only). An explicit runtime that is not installed, or cannot run the device or precision, is
    an error that says what to do: ONNX Runtime runs fp32, OpenVINO fp32 and, on a CPU with fast bf16, bf16.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "auto":
        if device.type != "cpu" or precision != "fp32":
            return "torch"
        return next(r for r in RUNTIME_PREFERENCE[cpu_kind()] if runtime_installed(r))
    if runtime == "torch":
        return runtime
    if not runtime_installed(runtime):
        raise ValueError(f"runtime {runtime!r} is not installed: pip install 'crnn-ocr[{RUNTIME_EXTRAS[runtime]}]' "
                         "(or use --runtime torch)")
    if device.type != "cpu":
        raise ValueError(f"runtime {runtime!r} runs on the CPU here; on {device.type} use --runtime torch")
    allowed = ("fp32", "bf16") if runtime == "openvino" and cpu_supports_bf16() else ("fp32",)
    if precision not in allowed:
        raise ValueError(f"runtime {runtime!r} runs {' or '.join(allowed)} on this CPU; {precision} runs on "
                         "--runtime torch")
    return runtime


def open_engine(runtime: str, graph: GraphSpec, precision: str, threads: int | None):
    """The engine of a non-PyTorch ``runtime`` for ``graph`` (exported, or taken from the cache): called with a
    float32 batch, it returns the graph's outputs in order, as numpy arrays."""
    from crnn.graph import cached_graph

    path = cached_graph(graph)
    if runtime == "onnxruntime":
        from crnn.runtime_onnxruntime import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, threads)
    if runtime == "openvino":
        from crnn.runtime_openvino import OpenVinoEngine

        return OpenVinoEngine(path, threads, precision)
    raise ValueError(f"no engine for runtime {runtime!r}")


def engine_for(requested: str, resolved: str, graph: Callable[[], GraphSpec], precision: str, threads: int | None,
               what: str) -> tuple[Any, str]:
    """(engine, runtime) for a network whose runtime resolved to ``resolved``: no engine for PyTorch. Where the graph
    cannot be exported or compiled, ``auto`` falls back to PyTorch with a warning; an explicit runtime raises."""
    if resolved == "torch":
        return None, resolved
    try:
        return open_engine(resolved, graph(), precision, threads), resolved
    except Exception as exc:
        if requested != "auto":
            raise
        warnings.warn(f"{resolved} could not run {what} ({exc.__class__.__name__}: {exc}); running it on PyTorch",
                      RuntimeWarning, stacklevel=3)
        return None, "torch"
