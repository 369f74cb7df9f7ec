"""The graphs the CPU runtimes run, exported to ONNX from our own modules: a recogniser up to its CTC head, a
text detector whole.

Our PyTorch module stays the source of truth: ONNX Runtime and OpenVINO run the graph
exported from it, so an adapted checkpoint goes through the same door as a bundled model.
The CTC head (one linear layer) stays in our code, where it can be cut to the classes a
request may write (``classify``), so allowlists stay exact and cheap on every runtime.

The graph maps ``images`` ``(N, C, H, W)`` (normalised as the model's spec says) to
``frames`` ``(N, T, D)`` (the head's input) and ``conv`` (the convolutional features the
domain gate of an adapted model reads). A detector's graph maps ``images`` to its score
``maps``. Graphs are cached on disk by a digest of the network's weights, so each set of
weights is exported once per machine.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from crnn.weights import state_dict_digest

#: Raise when the exported graph changes (its inputs, outputs or how it is written), so old cache entries are not
#: reused (they stay on disk; the cache folder may be emptied at any time).
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


@dataclass(frozen=True)
class GraphSpec:
    """What to export: the module to trace, an example input, and the names and dynamic axes of its outputs."""

    module: nn.Module
    example: torch.Tensor
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    #: Says which network the weights belong to: the architecture's class name.
    kind: str


def recognizer_graph(network: nn.Module, channels: int, height: int) -> GraphSpec:
    """A recogniser up to its CTC head: ``images`` -> ``frames``, ``conv`` (batch and width dynamic)."""
    if not hasattr(network, "encode"):
        raise ValueError(f"a {type(network).__name__} has no encode(); only fp32 networks export")
    return GraphSpec(_Body(network), torch.zeros(2, channels, height, 128), ("frames", "conv"),
                     {"images": {0: "batch", 3: "width"}, "frames": {0: "batch", 1: "steps"},
                      "conv": {0: "batch", 3: "steps"}}, type(network).__name__)


def detector_graph(network: nn.Module, multiple: int) -> GraphSpec:
    """A text detector whole: ``images`` ``(N, 3, H, W)`` -> ``maps`` (batch, height and width dynamic)."""
    return GraphSpec(network, torch.zeros(1, 3, 4 * multiple, 8 * multiple), ("maps",),
                     {"images": {0: "batch", 2: "height", 3: "width"}, "maps": {0: "batch", 2: "rows", 3: "cols"}},
                     type(network).__name__)


def graph_key(spec: GraphSpec) -> str:
    """What identifies a graph: the network's architecture, weights and input layout, and the export version."""
    digest = hashlib.sha256(state_dict_digest(spec.module.state_dict()).encode())
    digest.update(f"{spec.kind}|{tuple(spec.example.shape[1:])}|{spec.outputs}|{GRAPH_VERSION}|{OPSET}".encode())
    return digest.hexdigest()[:32]


def export_graph(spec: GraphSpec, path: Path) -> None:
    """Write the graph (fp32) to ``path``, atomically."""
    module = spec.module.float().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = Path(tmp) / "graph.onnx"
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (spec.example,), str(partial), input_names=["images"],
                              output_names=list(spec.outputs), dynamic_axes=spec.dynamic, opset_version=OPSET,
                              dynamo=False)
        partial.replace(path)


def cached_graph(spec: GraphSpec, directory: Path | None = None) -> Path:
    """The path of the exported graph, exporting it first if the cache does not hold it.

    Falls back to a temporary folder where the cache folder cannot be written.
    """
    name = f"{spec.kind.lower()}-{graph_key(spec)}.onnx"
    for folder in ([directory] if directory else [cache_dir() / "graphs", Path(tempfile.gettempdir()) / "crnn-ocr"]):
        path = folder / name
        if path.is_file():
            return path
        try:
            export_graph(spec, path)
            return path
        except OSError:
            continue
    raise OSError(f"could not write the exported graph {name} to {directory or cache_dir()} or the temp folder")
