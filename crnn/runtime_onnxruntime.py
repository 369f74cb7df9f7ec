"""The ONNX Runtime engine: the exported graph (``crnn.graph``) on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxRuntimeEngine:
    """Runs a network's graph up to its head: a batch ``(N, C, H, W)`` float32 in, ``(frames, conv)`` out."""

    name = "onnxruntime"

    def __init__(self, graph: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames, conv = self.session.run(["frames", "conv"], {"images": np.ascontiguousarray(batch, np.float32)})
        return frames, conv
