"""The thin ``ocr.v1.Recognizer`` servicer: proto -> domain -> proto; errors mapped in one place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from functools import partial

import grpc

from crnn import Recognizer, Result
from crnn.preprocess import PreparedImage
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.batcher import Clock
from server.collect import Collector
from server.contract import (
    ReadOptions,
    check_off_loop,
    list_models_response,
    prepare_off_loop,
    read_request,
    recognize_response,
    select_model,
)
from server.errors import RequestError, status_for
from server.metrics import Metrics
from server.worker import ModelWorker
from textdet import Detector, PageReader

log = logging.getLogger(__name__)


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
        #: Loads a model a request names that is not loaded yet (set by the server; None: never).
        self.loader: Callable[[str], Awaitable[None]] | None = None
        #: Returns the text detector, loading it on first use (set by the server; None: no detection).
        self.detector_loader: Callable[[], Awaitable[Detector]] | None = None
        self._page_readers: dict[str, PageReader] = {}
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
        #: Keeps low-confidence crops for review (``ocr serve --collect``; None: off).
        self.collector: Collector | None = None

    @property
    def recognizers(self) -> dict[str, Recognizer]:
        return {name: worker.recognizer for name, worker in self.workers.items()}

    async def Recognize(self, request: ocr_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        try:
            return await self.recognize(request, context.time_remaining(), "grpc")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
        await context.abort(code, message)

    async def recognize(
        self, request: ocr_pb2.RecognizeRequest, timeout: float | None, protocol: str
    ) -> ocr_pb2.RecognizeResponse:
        """Answer one request, whatever protocol carried it; errors are raised (map them with ``status_for``).

        ``timeout`` is the caller's remaining time in seconds (None: no deadline).
        """
        start = time.perf_counter()
        deadline = self._clock.now() + timeout if timeout is not None else None
        try:
            response = await self._recognize(request, deadline)
        except asyncio.CancelledError:
            self._metrics.requests.labels("Recognize", "CANCELLED", protocol).inc()
            raise
        except Exception as exc:
            code, _ = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("Recognize failed")
            self._metrics.requests.labels("Recognize", code.name, protocol).inc()
            raise
        self._metrics.requests.labels("Recognize", "OK", protocol).inc()
        self._metrics.request_seconds.labels(protocol).observe(time.perf_counter() - start)
        return response

    async def _recognize(self, request: ocr_pb2.RecognizeRequest, deadline: float | None):
        if self.draining:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry on another instance")
        if not self.ready:
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is starting: models are loading")
        self.accepted += 1
        self.in_flight += 1
        self._idle.clear()
        try:
            response = await self._answer(request, deadline)
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

    async def _answer(self, request: ocr_pb2.RecognizeRequest, deadline: float | None):
        if (request.model or self.default_model) not in self.workers and self.loader is not None:
            await self.loader(request.model)
        _, worker = select_model(self.workers, request.model, self.default_model)
        # Refuse an overloaded model's request before decoding a byte of it: under overload, refused requests that
        # were decoded first took the CPU from the accepted ones (bench_server: 0.58x in-process at 128 clients).
        worker.batcher.check_admission(len(request.images))
        options = await check_off_loop(request, worker.recognizer, self._max_images, self._prep)
        prepared = await prepare_off_loop(worker.recognizer, request, self._prep)

        def read(images: Sequence[PreparedImage], read_options: ReadOptions, bulk: bool = False
                 ) -> Awaitable[list[Result]]:
            return worker.recognize(images, read_options, deadline, bulk)

        # Pages are detected on the preparation threads, beside the inference thread (crops keep flowing).
        readings = await read_request(prepared, options, read, partial(self._page_reader, worker), self._prep)
        if self.collector is not None:
            self.collector.offer(worker.name, [image.content for image in request.images], readings)
        return recognize_response(request, worker.name, readings)

    async def _page_reader(self, worker: ModelWorker) -> PageReader:
        """The detector (loaded on first use) paired with ``worker``'s recogniser."""
        if self.detector_loader is None:
            raise RequestError(grpc.StatusCode.UNIMPLEMENTED, "this server does not detect text; send cropped lines")
        detector = await self.detector_loader()
        reader = self._page_readers.get(worker.name)
        if reader is None or reader.recognizer is not worker.recognizer or reader.detector is not detector:
            reader = self._page_readers[worker.name] = PageReader(worker.recognizer, detector)
        return reader

    async def ListModels(self, request: ocr_pb2.ListModelsRequest, context: grpc.aio.ServicerContext):
        return self.list_models("grpc")

    def list_models(self, protocol: str) -> ocr_pb2.ListModelsResponse:
        """Every loaded model and the default (counted under ``protocol``)."""
        self._metrics.requests.labels("ListModels", "OK", protocol).inc()
        return list_models_response(self.recognizers, self.default_model)
