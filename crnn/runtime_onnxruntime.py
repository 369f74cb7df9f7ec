"""The ONNX Runtime engine: an exported graph (``crnn.graph``) on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxRuntimeEngine:
    """Runs an exported graph: a float32 batch in, the graph's outputs (in order) out."""

    name = "onnxruntime"

    def __init__(self, graph: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {"images": np.ascontiguousarray(batch, np.float32)})
