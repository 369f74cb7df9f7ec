"""A crop's latency on `ocr serve` while other clients' whole pages are read: alone, then beside a page stream.

    python scripts/bench/bench_page_load.py [--crops 200] [--page-clients 1] [--detector NAME]

Starts the server on free loopback ports. One client sends single crops of IIIT5K test one request at a time and
times each. First alone (the quiet baseline), then while ``--page-clients`` clients each send the shared receipts
(``detect``, one page a request) back to back. Prints p50/p95/p99 of the crop latency in both phases and the
pages read per second under load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import grpc
import numpy as np

from ocr.data.datasets import open_dataset
from ocr.data.page_sets import open_page_set
from ocr.v1 import ocr_pb2, ocr_pb2_grpc
from textdet import DEFAULT_DETECTOR, DETECTOR_SPECS

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"


def start_server(detector: str) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "ocr", "serve", "--port", "0", "--detector", detector]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # type: ignore[union-attr]
        if "listening on" in line:
            return proc, line.split("listening on ")[1].split()[0]
    raise RuntimeError("server did not start")


def percentiles(values: list[float]) -> str:
    ms = np.array(values) * 1000
    return "  ".join(f"p{q} {np.percentile(ms, q):7.1f} ms" for q in (50, 95, 99))


async def crop_latencies(stub, crops: list[bytes]) -> list[float]:
    out = []
    for crop in crops:
        start = time.perf_counter()
        await stub.Recognize(ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=crop)]), timeout=300)
        out.append(time.perf_counter() - start)
    return out


async def page_stream(stub, pages: list[bytes], stop: asyncio.Event, done: list[float]) -> None:
    while not stop.is_set():
        for page in pages:
            if stop.is_set():
                return
            await stub.Recognize(ocr_pb2.RecognizeRequest(images=[ocr_pb2.Image(content=page, detect=True)]),
                                 timeout=600)
            done.append(time.perf_counter())


async def run(target: str, crops: list[bytes], pages: list[bytes], page_clients: int) -> None:
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = ocr_pb2_grpc.RecognizerStub(channel)
        await crop_latencies(stub, crops[:10])  # warm
        quiet = await crop_latencies(stub, crops)
        stop, done = asyncio.Event(), []
        streams = [asyncio.create_task(page_stream(stub, pages[i::page_clients] or pages, stop, done))
                   for i in range(page_clients)]
        await asyncio.sleep(2.0)  # let the page stream get going
        start = time.perf_counter()
        loaded = await crop_latencies(stub, crops)
        seconds = time.perf_counter() - start
        stop.set()
        await asyncio.gather(*streams)
    pages_read = sum(1 for t in done if start <= t <= start + seconds)
    print(f"{len(crops)} crops, one a request, one client; {page_clients} page client(s) sending receipts")
    print(f"crop latency alone:        {percentiles(quiet)}  (mean {statistics.fmean(quiet) * 1000:.1f} ms)")
    print(f"crop latency beside pages: {percentiles(loaded)}  (mean {statistics.fmean(loaded) * 1000:.1f} ms)")
    print(f"pages read meanwhile: {pages_read} in {seconds:.1f} s ({pages_read / seconds:.2f} pages/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=200)
    parser.add_argument("--page-clients", type=int, default=1)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTOR_SPECS))
    args = parser.parse_args()
    crops = [s.image for s in islice(iter(open_dataset(SHARED / "iiit5k_test_even_scenes")), args.crops)]
    pages = [p.image_path.read_bytes() for p in open_page_set(SHARED / "sroie_receipts_full_part1")]
    proc, target = start_server(args.detector)
    try:
        asyncio.run(run(target, crops, pages, args.page_clients))
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
