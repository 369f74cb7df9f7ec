"""The ONNX Runtime engine: an exported graph (``crnn.graph``) on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxRuntimeEngine:
    """Runs an exported graph: a float32 batch in, the graph's outputs (in order) out. ``providers``: ONNX Runtime's
    execution providers (the CPU's by default; ``scripts/bench/gpu_check.py`` passes CUDA's)."""

    name = "onnxruntime"

    def __init__(self, graph: Path, threads: int | None = None,
                 providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=list(providers))

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {"images": np.ascontiguousarray(batch, np.float32)})
