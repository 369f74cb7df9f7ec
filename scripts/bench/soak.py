"""Soak `ocr serve`: many concurrent gRPC and HTTP clients, good and bad requests, for a while; nothing may be lost.

    python scripts/bench/soak.py [DATASET] [--seconds 60] [--clients 200] [--max-queue-size 512]
                                 [--max-queue-wait S] [--runtime auto] [--json soak.json]

Starts ``ocr serve --http-port`` as a subprocess on free loopback ports. Half
the clients speak gRPC, half HTTP/JSON (JSON with base64, or multipart). Each
client loops until time is up, drawing a request from a fixed mix: one real
crop, many crops (8-32), a corrupt image, a huge image (a header claiming
100,000 x 100,000 pixels), bad fields (a pattern that does not compile, a beam
too wide, an unknown model) and, over HTTP, invalid JSON and bad base64.

Every request must end in a result or a deliberate status:

* answered: OK with one result per image, or the status its kind calls for
  (INVALID_ARGUMENT / 400, NOT_FOUND / 404);
* overload: RESOURCE_EXHAUSTED / 429 once the queue is full, in images or in
  seconds of measured work (the client backs off, exponentially from 50 ms to
  2 s with jitter, as a real one would);
* lost: anything else (a transport error, a client-side timeout, INTERNAL /
  500, a wrong status or a wrong number of results).

Reports requests sent / answered / overloaded / lost (lost must be 0),
p50/p99 latency of good requests per protocol (accepted calls: a refused try is
not counted; the p99 must stay within ``--max-p99`` seconds), the server's RSS after a
warm-up and at the end (medians of the first and last quarter of readings
taken every 5 s; growth must stay within 10%), that health still says
SERVING, and that SIGTERM drains and exits 0. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import aiohttp
import grpc
import numpy as np
from bench_server import backoff  # this folder: python puts it on the path
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ocr.data.datasets import open_dataset
from ocr.v1 import ocr_pb2, ocr_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"
#: Request kinds, their weights in the mix, and the status each must get (OK: one result per image).
KINDS = {
    "one": (40, "OK"),
    "many": (15, "OK"),
    "corrupt": (10, "INVALID_ARGUMENT"),
    "huge": (5, "INVALID_ARGUMENT"),
    "bad_pattern": (5, "INVALID_ARGUMENT"),
    "bad_beam": (5, "INVALID_ARGUMENT"),
    "unknown_model": (5, "NOT_FOUND"),
    "bad_json": (5, "INVALID_ARGUMENT"),  # HTTP only; a gRPC client sends "one" instead
    "bad_base64": (5, "INVALID_ARGUMENT"),  # HTTP only
}
HTTP_CODES = {"OK": 200, "INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def huge_png() -> bytes:
    """A PNG header claiming 100,000 x 100,000 pixels (the decoder must refuse it before allocating)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


@dataclass
class Tally:
    """What happened to every request, by protocol."""

    sent: Counter = field(default_factory=Counter)
    outcome: Counter = field(default_factory=Counter)  # (protocol, answered|overload|lost)
    lost_reasons: Counter = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=lambda: {"grpc": [], "http": []})
    images: int = 0


@dataclass(frozen=True)
class Job:
    kind: str
    images: list[bytes]
    fields: dict


class Workload:
    """Draws requests from the mix (deterministic for a seed)."""

    def __init__(self, crops: list[bytes], seed: int) -> None:
        self.crops = crops
        self.rng = random.Random(seed)
        self.kinds = list(KINDS)
        self.weights = [KINDS[k][0] for k in self.kinds]

    def corrupt(self) -> bytes:
        data = bytearray(self.rng.choice(self.crops))
        if self.rng.random() < 0.5:
            return bytes(data[: self.rng.randint(1, max(1, len(data) // 3))])
        for i in range(0, min(len(data), 64)):
            data[i] ^= 0xFF
        return bytes(data)

    def job(self, protocol: str) -> Job:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if protocol == "grpc" and kind in ("bad_json", "bad_base64"):
            kind = "one"
        one = [self.rng.choice(self.crops)]
        if kind == "many":
            return Job(kind, self.rng.sample(self.crops, self.rng.randint(8, 32)), {})
        if kind == "corrupt":
            return Job(kind, [self.corrupt()], {})
        if kind == "huge":
            return Job(kind, [huge_png()], {})
        if kind == "bad_pattern":
            return Job(kind, one, {"pattern": "([a-z]"})
        if kind == "bad_beam":
            return Job(kind, one, {"beam_width": 1000})
        if kind == "unknown_model":
            return Job(kind, one, {"model": "no_such_model"})
        return Job(kind, one, {})


async def grpc_client(stub, work: Workload, tally: Tally, end: float, timeout: float) -> None:
    refusals = 0
    while time.monotonic() < end:
        job = work.job("grpc")
        images = [ocr_pb2.Image(content=c, id=str(i)) for i, c in enumerate(job.images)]
        request = ocr_pb2.RecognizeRequest(images=images, **job.fields)
        tally.sent["grpc"] += 1
        start = time.perf_counter()
        try:
            response = await stub.Recognize(request, timeout=timeout)
            code, count = "OK", len(response.results)
        except grpc.aio.AioRpcError as exc:
            code, count = exc.code().name, 0
        record(tally, "grpc", job, code, count, time.perf_counter() - start)
        refusals = refusals + 1 if code == "RESOURCE_EXHAUSTED" else 0
        if refusals:
            await asyncio.sleep(backoff(refusals - 1))


async def http_client(session: aiohttp.ClientSession, url: str, work: Workload, tally: Tally, end: float,
                      timeout: float) -> None:
    refusals = 0
    while time.monotonic() < end:
        job = work.job("http")
        if job.kind == "bad_json":
            kwargs: dict = {"data": b'{"images": [', "headers": {"Content-Type": "application/json"}}
        elif job.kind == "bad_base64":
            kwargs = {"json": {"images": [{"content": "***not base64***"}]}}
        elif work.rng.random() < 0.5:
            form = aiohttp.FormData()
            for i, data in enumerate(job.images):
                form.add_field("image", data, filename=f"{i}.img")
            for name, value in job.fields.items():
                form.add_field(name, str(value))
            kwargs = {"data": form}
        else:
            images = [{"content": base64.b64encode(c).decode(), "id": str(i)} for i, c in enumerate(job.images)]
            kwargs = {"json": {"images": images, **job.fields}}
        tally.sent["http"] += 1
        start = time.perf_counter()
        try:
            async with session.post(f"{url}/v1/recognize", timeout=aiohttp.ClientTimeout(total=timeout),
                                    **kwargs) as response:
                body = await response.json()
                if response.status == 200:
                    code, count = "OK", len(body["results"])
                else:
                    code, count = body["error"]["code"], 0
                    if HTTP_CODES.get(code) != response.status:
                        code = f"{code} as HTTP {response.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError) as exc:
            code, count = f"client error {exc.__class__.__name__}", 0
        record(tally, "http", job, code, count, time.perf_counter() - start)
        refusals = refusals + 1 if code == "RESOURCE_EXHAUSTED" else 0
        if refusals:
            await asyncio.sleep(backoff(refusals - 1))


def record(tally: Tally, protocol: str, job: Job, code: str, count: int, seconds: float) -> None:
    expected = KINDS[job.kind][1]
    if code == "RESOURCE_EXHAUSTED":
        tally.outcome[(protocol, "overload")] += 1
    elif code == expected and (code != "OK" or count == len(job.images)):
        tally.outcome[(protocol, "answered")] += 1
        if code == "OK":
            tally.latency[protocol].append(seconds)
            tally.images += count
    else:
        tally.outcome[(protocol, "lost")] += 1
        tally.lost_reasons[f"{protocol} {job.kind}: {code} (expected {expected})"] += 1


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def sample_rss(pid: int, end: float, every: float, samples: list[float]) -> None:
    """The server's RSS every ``every`` seconds until ``end`` (to tell a plateau from a leak)."""
    while time.monotonic() < end:
        samples.append(rss_mib(pid))
        await asyncio.sleep(every)


async def run_clients(target: str, url: str, work: Workload, tally: Tally, clients: int, seconds: float,
                      timeout: float, pid: int, rss: list[float]) -> None:
    end = time.monotonic() + seconds
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    stubs = [ocr_pb2_grpc.RecognizerStub(c) for c in channels]
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [grpc_client(stubs[i % 4], work, tally, end, timeout) for i in range(clients // 2)]
        tasks += [http_client(session, url, work, tally, end, timeout) for _ in range(clients - clients // 2)]
        tasks.append(sample_rss(pid, end, 5.0, rss))
        await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()


def start_server(args: argparse.Namespace, port: int, http_port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "ocr", "serve", "--port", str(port), "--http-port", str(http_port),
               "--max-queue-size", str(args.max_queue_size), "--precision", args.precision, "--grace", "30",
               "--runtime", args.runtime,
               *(["--max-queue-wait", str(args.max_queue_wait)] if args.max_queue_wait is not None else [])]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if "HTTP/JSON" in line:
            return proc
    raise RuntimeError(f"server did not start (exit {proc.wait()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_set = DEFAULT_SET if DEFAULT_SET.is_dir() else ROOT / "examples"
    parser.add_argument("dataset", nargs="?", type=Path, default=default_set)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured soak after the warm-up (default: 60)")
    parser.add_argument("--warmup", type=float, default=15.0, help="load before the first RSS reading (default: 15)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--max-queue-size", type=int, default=512, help="the server's queue limit (default: 512)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--max-queue-wait", type=float, default=None,
                        help="the server's admission limit in seconds of queued work (default: the server's; 0: off)")
    parser.add_argument("--max-p99", type=float, default=3.0,
                        help="the p99 latency of accepted good requests may not pass this, seconds (default: 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="client-side timeout per request (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    crops = [s.image for s in islice(iter(open_dataset(args.dataset)), 200) if isinstance(s.image, bytes)]
    port, http_port = free_port(), free_port()
    proc = start_server(args, port, http_port)
    target, url = f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"
    work = Workload(crops, args.seed)
    try:
        warm, rss_series = Tally(), []
        asyncio.run(run_clients(target, url, work, warm, args.clients, args.warmup, args.timeout, proc.pid, []))
        tally = Tally()
        started = time.monotonic()
        asyncio.run(run_clients(target, url, work, tally, args.clients, args.seconds, args.timeout, proc.pid,
                                rss_series))
        elapsed = time.monotonic() - started
        rss_series.append(rss_mib(proc.pid))
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
        serving = health == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(120)

    sent = sum(tally.sent.values())
    lost = sum(v for (_, kind), v in tally.outcome.items() if kind == "lost") + warm.outcome[("grpc", "lost")] \
        + warm.outcome[("http", "lost")]
    # RSS swings by +-15% with the batches in flight: compare the median of the first and last quarter of readings.
    quarter = max(1, len(rss_series) // 4)
    rss_before, rss_after = statistics.median(rss_series[:quarter]), statistics.median(rss_series[-quarter:])
    growth = rss_after / rss_before - 1
    pct = lambda xs, q: float(np.percentile(xs, q)) * 1000 if xs else float("nan")  # noqa: E731
    print(f"soak: {args.clients} clients ({args.clients // 2} gRPC, {args.clients - args.clients // 2} HTTP), "
          f"{elapsed:.0f} s after a {args.warmup:.0f} s warm-up; server queue limit {args.max_queue_size} images, "
          f"{'the server default' if args.max_queue_wait is None else args.max_queue_wait} s of work")
    print(f"{'protocol':>8} {'sent':>7} {'answered':>9} {'overload':>9} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for protocol in ("grpc", "http"):
        o = tally.outcome
        print(f"{protocol:>8} {tally.sent[protocol]:>7} {o[(protocol, 'answered')]:>9} {o[(protocol, 'overload')]:>9} "
              f"{o[(protocol, 'lost')]:>5} {pct(tally.latency[protocol], 50):8.1f} "
              f"{pct(tally.latency[protocol], 99):8.1f}")
    print(f"all: {sent} requests sent ({sent / elapsed:.0f}/s), {tally.images} images read, {lost} lost "
          f"(warm-up included: {sum(warm.sent.values())} more requests)")
    for reason, count in (tally.lost_reasons + warm.lost_reasons).most_common(10):
        print(f"  lost: {count} x {reason}")
    print(f"server RSS (median of the first / last {quarter} readings): {rss_before:.0f} MiB after warm-up, "
          f"{rss_after:.0f} MiB at the end ({100 * growth:+.1f}%); peak {max(rss_series):.0f} MiB; every 5 s: "
          f"{' '.join(f'{r:.0f}' for r in rss_series)}")
    print(f"health after the soak: {'SERVING' if serving else 'NOT SERVING'}; SIGTERM drain exit status {exit_code}")
    worst_p99 = max((pct(v, 99) for v in tally.latency.values() if v), default=float("nan")) / 1000
    checks = {"nothing lost": lost == 0, "RSS growth <= 10%": growth <= 0.10, "still SERVING": serving,
              "clean drain": exit_code == 0, f"p99 of accepted <= {args.max_p99:g} s": worst_p99 <= args.max_p99}
    print("checks: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in checks.items()))
    if args.json:
        args.json.write_text(json.dumps({
            "clients": args.clients, "seconds": elapsed, "sent": dict(tally.sent),
            "outcome": {f"{p} {k}": v for (p, k), v in tally.outcome.items()},
            "lost": lost, "lost_reasons": dict(tally.lost_reasons + warm.lost_reasons),
            "p50_ms": {p: pct(v, 50) for p, v in tally.latency.items()},
            "p99_ms": {p: pct(v, 99) for p, v in tally.latency.items()},
            "rss_mib_before": rss_before, "rss_mib_after": rss_after, "rss_mib_every_5s": rss_series,
            "serving": serving, "exit_code": exit_code,
            "median_latency_ms": {p: statistics.median(v) * 1000 for p, v in tally.latency.items() if v},
        }, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
