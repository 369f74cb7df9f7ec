"""Process lifecycle: build the gRPC server, load and warm up models, serve, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crnn import Recognizer
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.auth import BearerTokenInterceptor
from server.batcher import BatcherConfig
from server.collect import CollectOptions, Collector
from server.config import ServerConfig
from server.contract import build_detector, build_recognizer, check_loadable, load_for_request
from server.http_api import HttpApi
from server.metrics import Metrics
from server.service import RecognizerService
from server.worker import ModelWorker
from textdet import Detector

log = logging.getLogger(__name__)
SERVICE_NAME = ocr_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class OcrServer:
    """One server process: health + reflection + ``ocr.v1.Recognizer`` over one inference thread.

    With ``config.http_port`` the same service also answers HTTP/JSON (and
    serves the web page) on that port, through the same batcher.

    ``recognizers`` lets a caller (tests, benchmarks) hand in models it has
    already loaded; otherwise ``config.models`` are loaded on :meth:`start`.
    """

    def __init__(self, config: ServerConfig, recognizers: dict[str, Recognizer] | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self._given = recognizers
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._prep = ThreadPoolExecutor(max_workers=config.prep_threads, thread_name_prefix="prepare")
        self.health = health.aio.HealthServicer()
        self.service = RecognizerService(
            {}, config.models[0], self._prep, self.metrics, config.max_images_per_request
        )
        self.service.loader = self.load_on_demand
        if config.collect_dir is not None:
            self.service.collector = Collector(CollectOptions(config.collect_dir, config.collect_below,
                                                              config.collect_max))
        self.service.detector_loader = self.detector
        self._detector: asyncio.Future | None = None
        self._batcher_config = BatcherConfig(config.max_batch_size, config.max_queue_delay_ms, config.max_queue_size,
                                            config.max_queue_wait_s)
        self.port: int | None = None
        self.http: HttpApi | None = None
        self._server: grpc.aio.Server | None = None
        self._stopped = asyncio.Event()
        self._loading: dict[str, asyncio.Future] = {}

    def _load(self) -> dict[str, Recognizer]:
        recognizers = dict(self._given or {})
        for recognizer in recognizers.values():
            recognizer.warmup()
        for name in self.config.models:
            if name not in recognizers:
                recognizers[name] = build_recognizer(name, self.config)
        return recognizers

    async def start(self) -> int:
        """Bind, answer health as NOT_SERVING, load and warm up models, then SERVING; returns the port."""
        c = self.config
        options = [
            ("grpc.max_receive_message_length", c.max_message_bytes),
            ("grpc.max_send_message_length", c.max_message_bytes),
        ]
        interceptors = [BearerTokenInterceptor(c.token)] if c.token else []
        self._server = grpc.aio.server(options=options, interceptors=interceptors)
        ocr_pb2_grpc.add_RecognizerServicer_to_server(self.service, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._server)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, NOT_SERVING)
        address = f"{c.host}:{c.port}"
        if c.tls_cert and c.tls_key:
            credentials = grpc.ssl_server_credentials([(c.tls_key.read_bytes(), c.tls_cert.read_bytes())])
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        await self._server.start()
        if c.http_port is not None:
            self.http = HttpApi(self.service, self.metrics, c)
            tls = (c.tls_cert, c.tls_key) if c.tls_cert and c.tls_key else None
            await self.http.start(c.host, c.http_port, tls)
        if c.metrics_port is not None:
            self.metrics.serve_http(c.metrics_port, c.host)
        loop = asyncio.get_running_loop()
        recognizers = await loop.run_in_executor(self._inference, self._load)
        for name, recognizer in recognizers.items():
            worker = ModelWorker(recognizer, self._inference, self._batcher_config, self.metrics)
            worker.batcher.start()
            self.service.workers[name] = worker
        gc.collect()
        gc.freeze()  # the models and start-up objects never die: keep them out of every future GC pass
        self.service.ready = True
        for service in ("", SERVICE_NAME):
            await self.health.set(service, SERVING)
        log.info("serving %s on %s:%d", ", ".join(recognizers), c.host, self.port)
        return self.port

    async def load_on_demand(self, name: str) -> None:
        """Load a model a request names (models folder or registry) once, on the inference thread.

        Concurrent requests for the same name share one load; other models'
        batches wait while it loads (about a second on CPU).
        """
        if name in self.service.workers:
            return
        if name not in self._loading:
            check_loadable(name, len(self.service.workers) + len(self._loading), self.config)
            self._loading[name] = asyncio.ensure_future(self._load_worker(name))
            self._loading[name].add_done_callback(lambda _: self._loading.pop(name, None))
        await asyncio.shield(self._loading[name])

    async def detector(self) -> Detector:
        """The text detector, loaded once on the inference thread when a request first asks for ``detect``.

        Loading takes about a second on CPU; batches wait meanwhile. A failed load is retried by the next request.
        """
        if self._detector is None or (self._detector.done() and self._detector.exception() is not None):
            loop = asyncio.get_running_loop()
            self._detector = loop.run_in_executor(self._inference, build_detector, self.config)
        return await asyncio.shield(self._detector)

    async def _load_worker(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        recognizer = await loop.run_in_executor(self._inference, load_for_request, name, self.config)
        worker = ModelWorker(recognizer, self._inference, self._batcher_config, self.metrics)
        worker.batcher.start()
        self.service.workers[name] = worker
        log.info("loaded model %s on request", name)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new calls, answer every accepted one, then release everything."""
        if self._server is None:
            self._stopped.set()
            return
        if self.service.draining:
            await self._stopped.wait()
            return
        grace = self.config.grace_s if grace is None else grace
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        self.service.draining = True  # new calls now get UNAVAILABLE from the handler
        await self.health.enter_graceful_shutdown()
        await self.service.wait_idle(grace)  # every accepted call answered (or the grace period spent)
        await self._server.stop(max(0.0, end - loop.time()))
        if self.http is not None:
            await self.http.stop()
        for worker in self.service.workers.values():
            await worker.batcher.stop()
        self._inference.shutdown(wait=True)
        self._prep.shutdown(wait=True)
        if self.service.collector is not None:
            self.service.collector.close()
        self._stopped.set()

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(config: ServerConfig) -> int:
    """Run until SIGTERM or SIGINT, then drain within the grace period; returns the exit status."""
    server = OcrServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(server.stop()))
    await server.start()
    print(f"ocr serve: listening on {config.host}:{server.port} ({', '.join(config.models)})", flush=True)
    if server.http is not None:
        print(f"ocr serve: HTTP/JSON and the web page on http{'s' if config.tls_cert else ''}://"
              f"{config.host}:{server.http.port}/", flush=True)
    await server.wait()
    print("ocr serve: drained, exiting", flush=True)
    return 0
