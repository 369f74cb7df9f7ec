"""int8 inference for the convolutional stack (the LSTMs stay fp32), on x86 CPUs.

Route (measured in docs/studies/performance.md against ONNX Runtime's QDQ int8):
PyTorch's FX graph-mode post-training quantization with the ``x86`` backend
(oneDNN/FBGEMM int8 kernels), static activation ranges. The ranges are
fitted once, offline, from real and rendered lines
(``scripts/tools/fit_int8.py --write``) and shipped beside the model as the
observers' state (``calibrations/<model>_int8.pt``, tied to the weights by
SHA-256), so loading an int8 model needs no data and gives the same network
on every machine.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from crnn.calibration import TABLES
from crnn.weights import write_atomically

#: Observer state keys end with these (the rest of a prepared model's state dict is the weights).
_OBSERVER_KEYS = ("histogram", "min_val", "max_val")


def stats_path(model: str) -> Path:
    """Where the int8 activation ranges of a registered model are shipped."""
    return TABLES / f"{model}_int8.pt"


def cpu_has_vnni() -> bool:
    """True on CPUs with int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX), where int8 pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def int8_supported() -> bool:
    """True where PyTorch has its x86 quantized engine (int8 runs; it is only fast with VNNI)."""
    return "x86" in torch.backends.quantized.supported_engines


def _prepare(features: nn.Module, example: torch.Tensor) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FX quantization is marked deprecated upstream; it is what runs fastest here
        return prepare_fx(copy.deepcopy(features).eval(), get_default_qconfig_mapping("x86"), (example,))


def _convert(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared)


def _features(network: nn.Module) -> nn.Module:
    return network.FeatureExtraction.ConvNet  # type: ignore[union-attr,return-value]


def fit_stats(network: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Observe the convolutional stack's activations on ``batches`` (N, 1, H, W); returns the observers' state."""
    batches = list(batches)
    if not batches:
        raise ValueError("int8 calibration needs at least one batch")
    prepared = _prepare(_features(network), batches[0])
    with torch.inference_mode():
        for batch in batches:
            prepared(batch)
    return {k: v.clone() for k, v in prepared.state_dict().items() if k.endswith(_OBSERVER_KEYS)}


def quantized_network(network: nn.Module, stats: dict[str, torch.Tensor], input_height: int) -> nn.Module:
    """A copy of ``network`` whose convolutional stack runs in int8 with the ranges in ``stats``."""
    example = torch.zeros(1, 1, input_height, 64)
    prepared = _prepare(_features(network), example)
    expected = {k for k in prepared.state_dict() if k.endswith(_OBSERVER_KEYS)}
    if set(stats) != expected:
        raise ValueError(f"int8 statistics do not fit this network ({len(stats)} entries, expected {len(expected)})")
    prepared.load_state_dict(stats, strict=False)
    quantized = copy.deepcopy(network).float().eval()
    quantized.FeatureExtraction.ConvNet = _convert(prepared)  # type: ignore[union-attr]
    for p in quantized.parameters():
        p.requires_grad_(False)
    return quantized


def save_stats(stats: dict[str, torch.Tensor], weights_sha256: str, path: Path) -> None:
    """Write fitted ranges with the SHA-256 of the weights they belong to (atomically)."""
    buffer = io.BytesIO()
    torch.save({"weights_sha256": weights_sha256, "observers": stats}, buffer)
    write_atomically(path, buffer.getvalue())


def load_stats(path: Path, weights_sha256: str) -> dict[str, torch.Tensor]:
    """Shipped ranges for these weights; ``ValueError`` if they were fitted for other weights."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("weights_sha256") != weights_sha256:
        raise ValueError(f"{path.name} was fitted for other weights ({str(payload.get('weights_sha256'))[:12]}...)")
    return payload["observers"]
