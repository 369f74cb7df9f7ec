"""Counting the floating-point operations of one forward pass (for GFLOP/s figures)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _lstm_flops(network: nn.Module, frames: int) -> int:
    """LSTM FLOPs, which torch's counter does not see: 2 * 4H(I + H) per frame, direction and layer."""
    total = 0
    for module in network.modules():
        if isinstance(module, nn.LSTM):
            directions = 2 if module.bidirectional else 1
            for layer in range(module.num_layers):
                inputs = module.input_size if layer == 0 else module.hidden_size * directions
                total += 2 * 4 * module.hidden_size * (inputs + module.hidden_size) * directions * frames
    return total


def forward_flops(network: nn.Module, height: int, width: int, channels: int = 1) -> int:
    """FLOPs (multiply and add counted separately) for one ``channels x height x width`` image."""
    device = next(network.parameters()).device
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        logits = network(torch.zeros(1, channels, height, width, device=device))
    return int(counter.get_total_flops()) + _lstm_flops(network, logits.shape[1])
