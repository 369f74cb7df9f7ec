"""Prometheus metrics, named after Triton's: requests by code, items, batches, queue depth, timings."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's metrics, in a registry of their own (so tests can run several servers)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("ocr_requests", "Requests by method, gRPC status code and protocol (grpc or http)",
                                ["method", "code", "protocol"], registry=r)
        self.items = Counter("ocr_inference_items", "Images recognised", ["model"], registry=r)
        self.batches = Counter("ocr_inference_batches", "Batches run (items / batches = mean batch size)",
                               ["model"], registry=r)
        self.queue_depth = Gauge("ocr_queue_depth", "Images waiting to be batched", ["model"], registry=r)
        self.queue_wait = Gauge("ocr_queue_wait_estimate_seconds", "Seconds the queued images would take to read "
                                "at the measured rate (new requests are refused above --max-queue-wait)",
                                ["model"], registry=r)
        self.queue_seconds = Histogram("ocr_queue_duration_seconds", "Time an image waits before its batch runs",
                                       ["model"], buckets=_TIME_BUCKETS, registry=r)
        self.compute_seconds = Histogram("ocr_compute_duration_seconds", "Time to run one batch",
                                         ["model"], buckets=_TIME_BUCKETS, registry=r)
        self.request_seconds = Histogram("ocr_request_duration_seconds", "Recognize latency seen by the server",
                                         ["protocol"], buckets=_TIME_BUCKETS, registry=r)

    def serve_http(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``host:port``."""
        start_http_server(port, addr=host, registry=self.registry)
