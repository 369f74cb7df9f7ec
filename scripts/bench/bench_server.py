"""Drive `ocr serve` with concurrent gRPC and HTTP clients and compare with the in-process Recognizer, in one run.

    python scripts/bench/bench_server.py [DATASET] [--crops 512] [--concurrency 1,8,32,128] [--images-per-request 1,8]
                                   [--protocols grpc,http]

Starts the server as a subprocess on free loopback ports (gRPC, HTTP/JSON and
a metrics port, to read the mean batch size), then for each protocol,
concurrency C and images per request K sends the same real crops from C
concurrent clients (HTTP: JSON bodies with base64 images, one keep-alive
connection pool; rounds of both protocols interleave). Reports
throughput (images/s), request latency p50/p95/p99 and mean batch size, next
to the in-process ``Recognizer.recognize`` throughput on the same crops
(decoding included on both sides) and the latency of a lone in-process call.
Rows are medians over ``--repeats`` rounds. The server keeps its admission limit (``--max-queue-wait``, default
the server's): a refused call (RESOURCE_EXHAUSTED, HTTP 429) is retried after a short backoff, as a client
should (exponential, 50 ms to 2 s, with jitter), and counted in the "refused" column; images/s counts answered
images only, and latencies run from a call's first try to its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from itertools import islice
from pathlib import Path

import aiohttp
import grpc
import numpy as np

from crnn import Recognizer
from ocr.data.datasets import open_dataset
from ocr.v1 import ocr_pb2, ocr_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SET = ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """Sum of each metric family's samples from the server's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(ocr_inference_(?:items|batches)_total)\{[^}]*\} ([0-9.e+]+)$", line)
        if match:
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals


def start_server(args: argparse.Namespace, metrics_port: int, http_port: int) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable, "-m", "ocr", "serve", "--port", "0", "--metrics-port", str(metrics_port),
        "--http-port", str(http_port),
        "--max-batch-size", str(args.max_batch_size), "--max-queue-delay-ms", str(args.max_queue_delay_ms),
        "--precision", args.precision, "--runtime", args.runtime, "--device", args.device,
        *(["--max-queue-wait", str(args.max_queue_wait)] if args.max_queue_wait is not None else []),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    target = None
    for line in proc.stdout:  # type: ignore[union-attr]
        if "listening on" in line:
            target = line.split("listening on ")[1].split()[0]
        if "HTTP/JSON" in line and target:
            return proc, target
    raise RuntimeError("server did not start")


def backoff(attempt: int) -> float:
    """Seconds to wait before sending a refused call again: exponential from 50 ms to 2 s, with jitter, as gRPC's
    retry policies do (a fixed short wait lets hundreds of clients keep a busy server busier still)."""
    return min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5)


async def drive_http(url: str, crops: list[bytes], concurrency: int, per_request: int
                     ) -> tuple[float, list[float], int]:
    """:func:`drive` over HTTP/JSON: the same crops and calls, base64 in JSON bodies."""
    bodies = [
        json.dumps({"images": [{"content": base64.b64encode(c).decode()} for c in crops[i : i + per_request]]})
        for i in range(0, len(crops), per_request)
    ]
    latencies: list[float] = []
    refused = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(bodies)

        async def post(body: str) -> None:
            nonlocal refused
            for attempt in itertools.count():
                async with session.post(f"{url}/v1/recognize", data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        return
                    if response.status != 429:
                        raise RuntimeError(f"HTTP {response.status}")
                refused += 1
                await asyncio.sleep(backoff(attempt))

        async def client() -> None:
            for body in queue:
                start = time.perf_counter()
                await post(body)
                latencies.append(time.perf_counter() - start)

        await post(bodies[0])  # connect
        refused = 0
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, refused


async def drive(target: str, crops: list[bytes], concurrency: int, per_request: int
                ) -> tuple[float, list[float], int]:
    """Send every crop once, ``per_request`` per call, from ``concurrency`` clients; (seconds, latencies from each
    call's first try to its answer, refusals)."""
    requests = [
        ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=c) for c in crops[i : i + per_request]])
        for i in range(0, len(crops), per_request)
    ]
    latencies: list[float] = []
    refused = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        queue = iter(requests)

        async def call(req: ocr_pb2.RecognizeRequest) -> None:
            nonlocal refused
            for attempt in itertools.count():
                try:
                    await stub.Recognize(req, timeout=300)
                    return
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                refused += 1
                await asyncio.sleep(backoff(attempt))

        async def client() -> None:
            for req in queue:
                start = time.perf_counter()
                await call(req)
                latencies.append(time.perf_counter() - start)

        await call(requests[0])  # connect
        refused = 0
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_set = DEFAULT_SET if DEFAULT_SET.is_dir() else ROOT / "examples"
    parser.add_argument("dataset", nargs="?", type=Path, default=default_set)
    parser.add_argument("--crops", type=int, default=512)
    parser.add_argument("--concurrency", default="1,8,32,128")
    parser.add_argument("--images-per-request", default="1,8")
    parser.add_argument("--protocols", default="grpc,http", help="grpc, http or both (default: grpc,http)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lone-calls", type=int, default=200)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-delay-ms", type=float, default=0.0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-queue-wait", type=float, default=None,
                        help="the server's admission limit in seconds (default: the server's; 0: off)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    crops = [s.image for s in islice(iter(open_dataset(args.dataset)), args.crops)]
    crops = [c for c in crops if isinstance(c, bytes)]
    rec = Recognizer(precision=args.precision, runtime=args.runtime, device=args.device,
                     batch_size=args.max_batch_size)
    rec.warmup()
    metrics_port, http_port = free_port(), free_port()
    proc, target = start_server(args, metrics_port, http_port)
    http_url = f"http://127.0.0.1:{http_port}"
    protocols = args.protocols.split(",")
    try:
        rows = []
        # In-process reference, interleaved with the server rounds below so noise hits both alike.
        inproc_rates, lone_inproc, lone_grpc = [], [], []
        combos = [(proto, int(c), int(k)) for k in args.images_per_request.split(",")
                  for c in args.concurrency.split(",") for proto in protocols]
        figures: dict[tuple[str, int, int], dict[str, list[float]]] = {
            x: {"rate": [], "lat": [], "batch": [], "refused": []} for x in combos
        }
        channel = grpc.insecure_channel(target)
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        for _ in range(args.repeats):
            start = time.perf_counter()
            rec.recognize(crops)
            inproc_rates.append(len(crops) / (time.perf_counter() - start))
            for i in range(args.lone_calls):
                crop = crops[i % len(crops)]
                t0 = time.perf_counter()
                rec.recognize([crop])
                lone_inproc.append(time.perf_counter() - t0)
                request = ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=crop)])
                t0 = time.perf_counter()
                stub.Recognize(request, timeout=60)
                lone_grpc.append(time.perf_counter() - t0)
            for proto, concurrency, per_request in combos:
                before = scrape(metrics_port)
                if proto == "http":
                    seconds, latencies, refused = asyncio.run(drive_http(http_url, crops, concurrency, per_request))
                else:
                    seconds, latencies, refused = asyncio.run(drive(target, crops, concurrency, per_request))
                after = scrape(metrics_port)
                items = after["ocr_inference_items_total"] - before["ocr_inference_items_total"]
                batches = after["ocr_inference_batches_total"] - before["ocr_inference_batches_total"]
                f = figures[(proto, concurrency, per_request)]
                f["rate"].append(len(crops) / seconds)
                f["lat"].extend(latencies)
                f["batch"].append(items / max(batches, 1))
                f["refused"].append(refused)
        channel.close()
        inproc = statistics.median(inproc_rates)
        p = lambda xs, q: float(np.percentile(xs, q)) * 1000  # noqa: E731
        print(f"{len(crops)} crops from {args.dataset}; in-process {rec.runtime} {rec.precision} on {rec.device}; "
              f"server precision {args.precision}, runtime {args.runtime}, max batch "
              f"{args.max_batch_size}, max queue delay {args.max_queue_delay_ms} ms; medians of {args.repeats} rounds")
        print(f"in-process Recognizer.recognize: {inproc:.1f} images/s")
        print(f"lone call latency ms  in-process p50 {p(lone_inproc, 50):.2f} p99 {p(lone_inproc, 99):.2f} | "
              f"gRPC p50 {p(lone_grpc, 50):.2f} p99 {p(lone_grpc, 99):.2f} | "
              f"p99 ratio {p(lone_grpc, 99) / p(lone_inproc, 99):.2f}x")
        print(f"{'protocol':>8} {'clients':>7} {'img/req':>7} {'images/s':>9} {'vs in-proc':>10} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'p99 ms':>8} {'batch':>6} {'refused':>7}")
        for (proto, concurrency, per_request), f in figures.items():
            rate = statistics.median(f["rate"])
            row = {
                "protocol": proto, "clients": concurrency, "images_per_request": per_request, "images_per_s": rate,
                "vs_in_process": rate / inproc, "p50_ms": p(f["lat"], 50), "p95_ms": p(f["lat"], 95),
                "p99_ms": p(f["lat"], 99), "mean_batch": statistics.median(f["batch"]),
                "refused": statistics.median(f["refused"]),
            }
            rows.append(row)
            print(f"{proto:>8} {concurrency:>7} {per_request:>7} {rate:9.1f} {rate / inproc:9.2f}x "
                  f"{row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['p99_ms']:8.1f} {row['mean_batch']:6.1f} "
                  f"{row['refused']:7.0f}")
        if {"grpc", "http"} <= set(protocols):
            print("HTTP vs gRPC throughput, same client load (median of rounds, each round's pair run back to back):")
            for _, concurrency, per_request in combos[::len(protocols)]:
                ratios = [h / g for h, g in zip(figures[("http", concurrency, per_request)]["rate"],
                                                figures[("grpc", concurrency, per_request)]["rate"])]
                print(f"  {concurrency:>4} clients x {per_request} images/request: {statistics.median(ratios):.2f}x "
                      f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        if args.json:
            args.json.write_text(json.dumps({
                "in_process_images_per_s": inproc,
                "lone_in_process_p99_ms": p(lone_inproc, 99), "lone_grpc_p99_ms": p(lone_grpc, 99),
                "rows": rows,
            }, indent=2))
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
