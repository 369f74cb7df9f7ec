"""The graph the CPU runtimes run: a network up to its CTC head, exported to ONNX from our own module.

Our PyTorch module stays the source of truth: ONNX Runtime and OpenVINO run the graph
exported from it, so an adapted checkpoint goes through the same door as a bundled model.
The CTC head (one linear layer) stays in our code, where it can be cut to the classes a
request may write (``classify``), so allowlists stay exact and cheap on every runtime.

The graph maps ``images`` ``(N, C, H, W)`` (normalised as the model's spec says) to
``frames`` ``(N, T, D)`` (the head's input) and ``conv`` (the convolutional features the
domain gate of an adapted model reads). Graphs are cached on disk by a digest of the
network's weights, so each set of weights is exported once per machine.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from crnn.weights import state_dict_digest

#: Raise when the exported graph changes (its inputs, outputs or how it is written), so old cache entries go.
GRAPH_VERSION = 1
OPSET = 17
CACHE_ENV = "CRNN_OCR_CACHE"


class _Body(nn.Module):
    """``network.encode`` as a module with two outputs (what ``torch.onnx.export`` traces)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.encode(images)


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$CRNN_OCR_CACHE``, else ``$XDG_CACHE_HOME/crnn-ocr``, else
    ``~/.cache/crnn-ocr``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crnn-ocr"


def graph_key(network: nn.Module, channels: int, height: int) -> str:
    """What identifies a network's graph: its architecture, input layout, weights and the export version."""
    digest = hashlib.sha256(state_dict_digest(network.state_dict()).encode())
    digest.update(f"{type(network).__name__}|{channels}|{height}|{GRAPH_VERSION}|{OPSET}".encode())
    return digest.hexdigest()[:32]


def export_graph(network: nn.Module, channels: int, height: int, path: Path) -> None:
    """Write ``network``'s graph up to its head (fp32, dynamic batch and width) to ``path``, atomically."""
    if not hasattr(network, "encode"):
        raise ValueError(f"a {type(network).__name__} has no encode(); only fp32 networks export")
    body = _Body(network).float().eval()
    example = torch.zeros(2, channels, height, 128)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                body, (example,), str(partial), input_names=["images"], output_names=["frames", "conv"],
                dynamic_axes={"images": {0: "batch", 3: "width"}, "frames": {0: "batch", 1: "steps"},
                              "conv": {0: "batch", 3: "steps"}},
                opset_version=OPSET, dynamo=False,
            )
        partial.replace(path)


def cached_graph(network: nn.Module, channels: int, height: int, directory: Path | None = None) -> Path:
    """The path of ``network``'s exported graph, exporting it first if the cache does not hold it.

    Falls back to a temporary folder where the cache folder cannot be written.
    """
    name = f"{type(network).__name__.lower()}-{graph_key(network, channels, height)}.onnx"
    for folder in ([directory] if directory else [cache_dir() / "graphs", Path(tempfile.gettempdir()) / "crnn-ocr"]):
        path = folder / name
        if path.is_file():
            return path
        try:
            export_graph(network, channels, height, path)
            return path
        except OSError:
            continue
    raise OSError(f"could not write the exported graph {name} to {directory or cache_dir()} or the temp folder")
