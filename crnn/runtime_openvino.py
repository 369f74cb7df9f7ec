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

    The graph is compiled twice: for latency (one request uses every thread) and for throughput (several
    streams, each on its own threads). A batch of one line runs on the first; a larger batch is split into one
    part per stream, run at once (2 streams on 2 cores read 1.15x the lines/s of one 2-thread request on an AMD
    EPYC with AVX2; docs/export.md). Each calling thread gets its own infer requests (one request is not safe to
    share between threads).
    """

    name = "openvino"

    def __init__(self, graph: Path, threads: int | None = None, precision: str = "fp32") -> None:
        import openvino as ov

        self._ov = ov
        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        model = core.read_model(str(graph))
        self.latency = core.compile_model(model, "CPU", config | {"PERFORMANCE_HINT": "LATENCY"})
        self.throughput = core.compile_model(model, "CPU", config | {"PERFORMANCE_HINT": "THROUGHPUT"})
        self.streams = max(1, int(self.throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._local = threading.local()

    def _requests(self) -> tuple:
        """This thread's latency request and throughput queue."""
        requests = getattr(self._local, "requests", None)
        if requests is None:
            queue = self._ov.AsyncInferQueue(self.throughput, self.streams)
            requests = self._local.requests = (self.latency.create_infer_request(), queue)
        return requests

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        batch = np.ascontiguousarray(batch, np.float32)
        single, queue = self._requests()
        parts = min(self.streams, len(batch))
        if parts == 1:
            outputs = single.infer({0: batch})
            # The request reuses its output buffers on the next call: copy out.
            return [np.array(outputs[output]) for output in self.latency.outputs]
        chunks = np.array_split(batch, parts)
        count = len(self.throughput.outputs)
        results: list[list[np.ndarray] | None] = [None] * parts

        def done(request, index: int) -> None:
            results[index] = [np.array(request.get_output_tensor(i).data) for i in range(count)]

        queue.set_callback(done)
        for index, chunk in enumerate(chunks):
            queue.start_async({0: chunk}, index)
        queue.wait_all()
        return [np.concatenate([part[i] for part in results]) for i in range(len(results[0]))]  # type: ignore[index]
