"""Weights from a packaged ONNX file, copied onto our own PyTorch module.

A Paddle-exported ONNX graph names its tensors by kind (``conv2d_68.w_0``,
``batch_norm2d_57.w_1``, ``linear_3.b_0``, ...), not by place, so tensors are
matched by order instead: the graph's nodes are in execution order, and each
architecture in :mod:`crnn` registers its parameters in that same order. Every
tensor is checked against its parameter's shape (linear weights are stored
transposed, convolution biases as ``(1, C, 1, 1)``), so a module that drifts
from the file fails loudly, naming the first parameter that does not fit.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crnn.errors import WeightsError

#: Initializers that hold learned tensors (the rest are shapes, axes and scalar constants of the graph).
_PARAMETER = re.compile(r"^(conv2d_\d+\.w_0|batch_norm2d_\d+\.[wb]_\d|linear_\d+\.[wb]_0|p2o\.pd_op\.reshape\.\d+\.0"
                        r"|helper\.reshape\.\d+)$")
#: The exporter's casts: learned when they hold a kernel (a transposed convolution's weight), else shape constants.
_CAST = re.compile(r"^auto\.cast\.\d+$")


def _load(path: Path):
    """The parsed ONNX model; ``WeightsError`` if ``onnx`` is missing or the file is not a model."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise WeightsError("reading ONNX weights needs the 'onnx' package (pip install onnx)") from exc
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise WeightsError(f"{path}: cannot be read as an ONNX model ({exc.__class__.__name__}: {exc})") from exc


def onnx_parameters(path: Path) -> list[tuple[str, np.ndarray]]:
    """The learned tensors of an ONNX graph, in the order its nodes first use them."""
    from onnx import numpy_helper

    graph = _load(path).graph
    initializers = {init.name: init for init in graph.initializer}
    seen: set[str] = set()
    ordered = []
    for node in graph.node:
        for name in node.input:
            if name in initializers and name not in seen and (
                _PARAMETER.match(name) or (_CAST.match(name) and len(initializers[name].dims) >= 2)
            ):
                seen.add(name)
                ordered.append((name, numpy_helper.to_array(initializers[name])))
    return ordered


@lru_cache(maxsize=4)
def onnx_metadata(path: Path, key: str) -> str:
    """A metadata value of an ONNX file; ``WeightsError`` if absent."""
    for prop in _load(path).metadata_props:
        if prop.key == key:
            return prop.value
    raise WeightsError(f"{path}: no metadata {key!r}")


def _fit(name: str, tensor: np.ndarray, target: torch.Tensor, is_linear_weight: bool) -> torch.Tensor:
    if is_linear_weight:
        tensor = tensor.T
    if tensor.size != target.numel() or (tensor.ndim == target.dim() and tuple(tensor.shape) != tuple(target.shape)):
        raise WeightsError(f"ONNX tensor {name} of shape {tuple(tensor.shape)} does not fit {tuple(target.shape)}")
    return torch.from_numpy(np.array(tensor, copy=True)).reshape(target.shape).to(target.dtype)


def load_onnx_into(network: nn.Module, path: Path) -> None:
    """Copy an ONNX file's learned tensors onto ``network``'s parameters and BatchNorm statistics, in order."""
    tensors = onnx_parameters(path)
    linear_weights = {id(m.weight) for m in network.modules() if isinstance(m, nn.Linear)}
    targets = [(key, value) for key, value in network.state_dict(keep_vars=True).items()
               if not key.endswith("num_batches_tracked")]
    if len(tensors) != len(targets):
        raise WeightsError(f"{path}: {len(tensors)} learned tensors, but the network has {len(targets)}")
    state = {}
    for (onnx_name, tensor), (key, target) in zip(tensors, targets):
        try:
            state[key] = _fit(onnx_name, tensor, target, id(target) in linear_weights)
        except WeightsError as exc:
            raise WeightsError(f"{path}: parameter {key}: {exc}") from None
    network.load_state_dict(state, strict=False)
