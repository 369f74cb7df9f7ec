"""The OpenVINO engine: an exported graph (``crnn.graph``) compiled for the CPU by OpenVINO."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

#: Our precision names in OpenVINO's inference precision hint. fp32 is asked for explicitly: on CPUs with AMX or
#: AVX512-BF16 OpenVINO would otherwise run bf16 by default, which changes readings.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoEngine:
    """Runs an exported graph: a float32 batch in, the graph's outputs (in order) out.

    Each calling thread gets its own infer request (one request is not safe to share between threads).
    """

    name = "openvino"

    def __init__(self, graph: Path, threads: int | None = None, precision: str = "fp32") -> None:
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
        self._outputs = list(self.compiled.outputs)
        self._local = threading.local()

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        outputs = request.infer({0: np.ascontiguousarray(batch, np.float32)})
        # The request reuses its output buffers on the next call: copy out.
        return [np.array(outputs[output]) for output in self._outputs]
