"""``ocr serve --ray``: the recogniser as a Ray Serve deployment behind Ray Serve's gRPC proxy.

Clients speak the same ``ocr.v1.Recognizer`` contract as to ``ocr serve``:
requests are checked, answered and mapped to status codes by the same
functions (:mod:`server.contract`, :mod:`server.errors`). What differs:
batching across requests is Ray Serve's ``@serve.batch`` inside each
replica (the recogniser still splits a batch by width bucket, so a reading
never depends on its batch mates), replicas are Ray actors that Ray places
and scales, and the proxy (not this process) owns the listening port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import grpc
import ray
from grpc_health.v1 import health_pb2
from ray import serve
from ray.serve.config import gRPCOptions

from crnn import Recognizer, Result
from crnn.preprocess import PreparedImage
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from server.auth import token_matches
from server.batcher import run_isolated
from server.config import RayOptions, ServerConfig
from server.contract import (
    ReadOptions,
    build_recognizer,
    check_loadable,
    check_off_loop,
    list_models_response,
    load_for_request,
    prepare_off_loop,
    read_request,
    recognize_response,
    select_model,
)
from server.errors import RequestError, status_for
from textdet import PageReader

log = logging.getLogger(__name__)
APP_NAME = "ocr"
SERVICE_NAME = ocr_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name
#: What the proxy serves: our service and standard health checking (reflection is Ray's own).
SERVICER_FUNCTIONS = [
    "ocr.v1.ocr_pb2_grpc.add_RecognizerServicer_to_server",
    "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server",
]


@dataclass(frozen=True)
class _Item:
    model: str
    image: PreparedImage
    options: ReadOptions


async def _no_detector() -> PageReader:
    raise RequestError(grpc.StatusCode.UNIMPLEMENTED,
                       "text detection (Image.detect) is not served under --ray; use ocr serve without --ray")


class RecognizerDeployment:
    """One replica: the configured models, one inference thread, Ray Serve batching across requests."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        # All torch work on one thread: once a second thread ran the model, both ran 2.2x slower here
        # (measured, with or without Ray; torch's OpenMP pools are per calling thread).
        self._recognizers = self._inference.submit(self._load).result()
        self._default = config.models[0]
        self._loading = asyncio.Lock()
        self._prep = ThreadPoolExecutor(max_workers=config.prep_threads, thread_name_prefix="prepare")
        self._read_batch.set_max_batch_size(config.max_batch_size)
        self._read_batch.set_batch_wait_timeout_s(config.max_queue_delay_ms / 1000)

    def _load(self) -> dict[str, Recognizer]:
        return {name: build_recognizer(name, self._config) for name in self._config.models}

    async def _load_on_demand(self, name: str) -> None:
        """Load a model a request names, once per replica, on the inference thread (like ``ocr serve``)."""
        if name in self._recognizers:
            return
        async with self._loading:
            if name not in self._recognizers:
                check_loadable(name, len(self._recognizers), self._config)
                loop = asyncio.get_running_loop()
                self._recognizers[name] = await loop.run_in_executor(
                    self._inference, load_for_request, name, self._config
                )

    def _authorize(self, grpc_context) -> None:
        if self._config.token and not token_matches(grpc_context.invocation_metadata(), self._config.token):
            raise RequestError(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    async def Recognize(self, request: ocr_pb2.RecognizeRequest, grpc_context) -> ocr_pb2.RecognizeResponse:
        try:
            self._authorize(grpc_context)
            await self._load_on_demand(request.model or self._default)
            name, recognizer = select_model(self._recognizers, request.model, self._default)
            options = await check_off_loop(request, recognizer, self._config.max_images_per_request, self._prep)
            prepared = await prepare_off_loop(recognizer, request, self._prep)

            async def read(images: Sequence[PreparedImage], read_options: ReadOptions, bulk: bool = False
                           ) -> list[Result]:
                results = await asyncio.gather(*(self._read_batch(_Item(name, im, read_options)) for im in images))
                for result in results:
                    if isinstance(result, Exception):
                        raise result
                return list(results)

            readings = await read_request(prepared, options, read, _no_detector, self._inference)
            return recognize_response(request, name, readings)
        except Exception as exc:
            code, message = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("Recognize failed")
            grpc_context.set_code(code)
            grpc_context.set_details(message)
            return ocr_pb2.RecognizeResponse()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _read_batch(self, items: list[_Item]) -> list[Result | Exception]:
        """One Ray Serve batch: each model's images read together; a failing item fails only its request."""
        results: list[Result | Exception | None] = [None] * len(items)
        for name in {item.model for item in items}:
            rows = [i for i, item in enumerate(items) if item.model == name]
            read = await run_isolated(partial(self._compute, name), [items[i] for i in rows])
            for i, result in zip(rows, read):
                results[i] = result
        return results  # type: ignore[return-value]

    async def _compute(self, name: str, items: list[_Item]) -> list[Result]:
        recognizer = self._recognizers[name]
        return await asyncio.get_running_loop().run_in_executor(
            self._inference, recognizer.recognize_prepared, [i.image for i in items],
            [i.options.allowlist for i in items], [i.options.constraint for i in items],
            [i.options.min_confidence for i in items],
        )

    async def ListModels(self, request: ocr_pb2.ListModelsRequest, grpc_context) -> ocr_pb2.ListModelsResponse:
        try:
            self._authorize(grpc_context)
        except RequestError as exc:
            grpc_context.set_code(exc.code)
            grpc_context.set_details(str(exc))
            return ocr_pb2.ListModelsResponse()
        return list_models_response(self._recognizers, self._default)

    async def Check(self, request: health_pb2.HealthCheckRequest, grpc_context) -> health_pb2.HealthCheckResponse:
        """Standard health checking (open without a token, like ``ocr serve``); a replica that answers is up."""
        if request.service not in ("", SERVICE_NAME):
            grpc_context.set_code(grpc.StatusCode.NOT_FOUND)
            grpc_context.set_details(f"unknown service {request.service!r}")
            return health_pb2.HealthCheckResponse()
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def deployment_options(config: ServerConfig, options: RayOptions) -> dict:
    """``serve.deployment`` options for the replicas: count or autoscaling, CPUs/GPUs, queue limits."""
    actor = {"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica}
    result: dict = {
        "name": "Recognizer",
        "ray_actor_options": actor,
        # Enough concurrent requests per replica for batches to fill; beyond that Ray queues, then rejects.
        "max_ongoing_requests": max(64, 4 * config.max_batch_size),
        "max_queued_requests": config.max_queue_size,
        "graceful_shutdown_timeout_s": config.grace_s,
    }
    if options.autoscale:
        low, high = options.autoscale
        result["autoscaling_config"] = {
            "min_replicas": low, "max_replicas": high, "target_ongoing_requests": 2 * config.max_batch_size,
        }
    else:
        result["num_replicas"] = options.replicas
    return result


def _wait_until_routed(port: int, timeout: float) -> None:
    """Block until the proxy routes our RPCs to a ready replica (the route reaches the proxy asynchronously)."""
    end = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        while True:
            try:
                stub.ListModels(ocr_pb2.ListModelsRequest(), timeout=5)
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    return  # routed: the replica itself answered
                if time.monotonic() > end:
                    raise TimeoutError(f"Ray Serve's gRPC proxy did not route requests within {timeout:.0f} s") from exc
            time.sleep(0.2)


def serve_on_ray(config: ServerConfig, options: RayOptions) -> int:
    """Deploy on Ray (a local instance unless ``options.address``), serve until SIGTERM/SIGINT, then clean up."""
    started_local = options.address is None
    if started_local:
        # The proxy takes its message limit from the environment of the processes Ray starts here.
        os.environ.setdefault("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", str(config.max_message_bytes))
        ray.init(include_dashboard=False, num_cpus=options.num_cpus, logging_level=logging.WARNING)
    else:
        ray.init(address=options.address, logging_level=logging.WARNING)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(
            # Ray's HTTP proxy serves none of our routes: keep it on loopback whatever --host says.
            http_options={"host": "127.0.0.1", "port": options.http_port},
            grpc_options=gRPCOptions(port=config.port, grpc_servicer_functions=SERVICER_FUNCTIONS),
        )
        app = serve.deployment(RecognizerDeployment).options(**deployment_options(config, options)).bind(config)
        serve.run(app, name=APP_NAME, route_prefix="/")
        if started_local:
            _wait_until_routed(config.port, timeout=120)
        print(f"ocr serve --ray: Ray Serve gRPC proxy on port {config.port} ({', '.join(config.models)}; "
              f"{_replica_text(options)})", flush=True)
        stop.wait()
        print("ocr serve --ray: draining", flush=True)
    finally:
        if started_local:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(APP_NAME)  # leave the cluster (and other apps) running
    print("ocr serve --ray: stopped", flush=True)
    return 0


def _replica_text(options: RayOptions) -> str:
    if options.autoscale:
        return f"autoscaling {options.autoscale[0]}-{options.autoscale[1]} replicas"
    return f"{options.replicas} replica{'s' if options.replicas != 1 else ''}"
