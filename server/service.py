"""The thin ``ocr.v1.Recognizer`` servicer: proto -> domain -> proto; errors mapped in one place."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor

import grpc

from crnn import Result
from crnn.errors import UnknownModelError
from crnn.preprocess import PreparedImage
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.batcher import Clock
from server.errors import RequestError, status_for
from server.metrics import Metrics
from server.worker import ModelWorker

log = logging.getLogger(__name__)
#: Requests with at most this many image bytes are decoded on the event loop (~0.3 ms), bigger ones on a thread.
INLINE_PREPARE_BYTES = 64 * 1024


def _to_proto(image_id: str, result: Result, char_details: bool) -> ocr_pb2.Recognition:
    chars = (
        [ocr_pb2.Char(text=c.text, confidence=c.confidence, x_start=c.x_start, x_end=c.x_end) for c in result.chars]
        if char_details
        else []
    )
    return ocr_pb2.Recognition(id=image_id, text=result.text, confidence=result.confidence, chars=chars)


class RecognizerService(ocr_pb2_grpc.RecognizerServicer):
    """Validates a request, prepares its images off the loop, and awaits their batched readings."""

    def __init__(
        self,
        workers: dict[str, ModelWorker],
        default_model: str,
        prep_executor: Executor,
        metrics: Metrics,
        max_images: int,
        clock: Clock | None = None,
    ) -> None:
        self.workers = workers
        self.default_model = default_model
        self._prep = prep_executor
        self._metrics = metrics
        self._max_images = max_images
        self._clock = clock or Clock()
        self.ready = False
        self.draining = False
        #: Recognize calls that passed the readiness checks, and how many got an answer.
        self.accepted = 0
        self.answered = 0
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _worker(self, name: str) -> ModelWorker:
        name = name or self.default_model
        if name not in self.workers:
            raise UnknownModelError(f"unknown model {name!r}; this server has: {', '.join(sorted(self.workers))}")
        return self.workers[name]

    @staticmethod
    def _prepare_all(worker: ModelWorker, images) -> list[PreparedImage]:
        return worker.recognizer.prepare_many([im.content for im in images], [im.id for im in images])

    async def Recognize(self, request: ocr_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        try:
            response = await self._recognize(request, context)
            self._metrics.requests.labels("Recognize", "OK").inc()
            self._metrics.request_seconds.observe(time.perf_counter() - start)
            return response
        except asyncio.CancelledError:
            self._metrics.requests.labels("Recognize", "CANCELLED").inc()
            raise
        except Exception as exc:
            code, message = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("Recognize failed")
            self._metrics.requests.labels("Recognize", code.name).inc()
        await context.abort(code, message)

    async def _recognize(self, request: ocr_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        if self.draining:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance")
        if not self.ready:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is starting: models are loading")
        self.accepted += 1
        self.in_flight += 1
        self._idle.clear()
        try:
            response = await self._answer(request, context)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
        self.answered += 1
        return response

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no accepted call is in progress; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def _answer(self, request: ocr_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        worker = self._worker(request.model)
        allowlist = request.allowlist or None
        worker.recognizer.charset.allow_mask(allowlist)  # InvalidAllowlistError before any work
        if len(request.images) > self._max_images:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(request.images)} images in one request; the limit is {self._max_images}",
            )
        remaining = context.time_remaining()
        deadline = self._clock.now() + remaining if remaining is not None else None
        loop = asyncio.get_running_loop()
        if sum(len(im.content) for im in request.images) <= INLINE_PREPARE_BYTES:
            prepared = self._prepare_all(worker, request.images)  # cheaper than a thread hop
        else:
            prepared = await loop.run_in_executor(self._prep, self._prepare_all, worker, request.images)
        results = await worker.recognize(prepared, allowlist, deadline)
        return ocr_pb2.RecognizeResponse(
            model=worker.name,
            results=[_to_proto(im.id, r, request.char_details) for im, r in zip(request.images, results)],
        )

    async def ListModels(self, request: ocr_pb2.ListModelsRequest, context: grpc.aio.ServicerContext):
        self._metrics.requests.labels("ListModels", "OK").inc()
        models = [
            ocr_pb2.ModelInfo(
                name=name,
                alphabet=w.recognizer.charset.alphabet,
                input_height=w.recognizer.input_height,
                source=w.recognizer.model.source,
                checksum=w.recognizer.model.sha256,
                device=str(w.recognizer.device),
                precision=w.recognizer.precision,
            )
            for name, w in sorted(self.workers.items())
        ]
        return ocr_pb2.ListModelsResponse(models=models, default_model=self.default_model)
