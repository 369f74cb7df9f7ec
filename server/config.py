"""The server's configuration, built once by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crnn.specs import DEFAULT_MODEL
from textdet.specs import DEFAULT_DETECTOR

#: Largest request or response message accepted (bytes); bigger ones get RESOURCE_EXHAUSTED.
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
#: Most images in one RecognizeRequest.
DEFAULT_MAX_IMAGES = 512
TOKEN_ENV = "OCR_TOKEN"
#: --host values meaning every interface: the only ones ``ocr serve --ray`` accepts (Ray's gRPC proxy binds [::]).
ALL_INTERFACES = ("0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    device: str = "auto"
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    precision: str = "auto"
    runtime: str = "auto"
    threads: int | None = None
    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    max_queue_size: int = 2048
    #: New work is refused (RESOURCE_EXHAUSTED / 429) while the queued lines would take longer than this to read at
    #: the measured lines per second (None: no limit but ``max_queue_size``).
    max_queue_wait_s: float | None = 1.5
    max_images_per_request: int = DEFAULT_MAX_IMAGES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    metrics_port: int | None = None
    #: Serve HTTP/JSON (and the web page) on this port too, through the same batcher (None: off).
    http_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str | None = None
    grace_s: float = 30.0
    prep_threads: int = 2
    #: A RecognizeRequest.model that is not loaded yet is loaded from the models folder, up to this many models.
    max_models: int = 4
    #: The text detector for images sent with ``detect`` (textdet.specs).
    detector: str = DEFAULT_DETECTOR
    #: Keep cropped lines read below ``collect_below`` in this label folder (``ocr serve --collect``; None: off).
    collect_dir: Path | None = None
    collect_below: float = 0.5
    collect_max: int = 10_000

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")


def check_servable_on_ray(config: ServerConfig) -> None:
    """Refuse the options Ray Serve's proxies cannot honour, saying what to do instead (``ValueError``)."""
    if config.tls_cert or config.metrics_port is not None:
        raise ValueError("--ray: Ray Serve's proxy has no TLS (terminate it in front of the proxy) and reports "
                         "metrics through Ray's own Prometheus endpoint; drop --tls-*/--metrics-port")
    if config.collect_dir is not None:
        raise ValueError("--ray: --collect writes into one local folder; replicas on other nodes cannot: collect "
                         "with a plain `ocr serve`")
    if config.port == 0:
        raise ValueError("--ray needs a fixed --port: Ray Serve's gRPC proxy listens on it on every node")
    if config.http_port is not None:
        raise ValueError("--http-port is not served under --ray: Ray Serve's HTTP proxy answers only Ray's own "
                         "routes here; use the gRPC port, or run `ocr serve --http-port` without --ray")
    if config.host not in ALL_INTERFACES:
        raise ValueError(f"--ray cannot bind --host {config.host}: Ray Serve's gRPC proxy always listens on every "
                         f"interface ([::]:{config.port}) of every proxy node. Pass --host 0.0.0.0 to accept that "
                         "(and firewall the port), or run `ocr serve` without --ray to stay on loopback")


@dataclass(frozen=True)
class RayOptions:
    """Where and how ``ocr serve --ray`` runs its replicas."""

    address: str | None = None
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    #: CPUs of a local Ray instance (None: all of this machine's).
    num_cpus: int | None = None
    #: Ray Serve always starts an HTTP proxy too; it answers nothing of ours.
    http_port: int = 8000
