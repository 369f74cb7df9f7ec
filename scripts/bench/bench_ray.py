"""Ray's overhead on one machine, measured side by side: `ocr batch` engines and `ocr serve` vs `ocr serve --ray`.

    python scripts/bench/bench_ray.py [--images 2000] [--repeats 3] [--crops 512] [--clients 32]

Batch: the same list of real crops (IIIT5K test + train from ../shared/data,
else copies of the examples) read by `ocr batch --engine local` (2 threads),
by Ray Data with 1 actor (2 CPUs) and with 2 actors (1 CPU each); each as a
fresh command, rounds interleaved, medians reported: wall time and lines/s
for N images (start-up included), and the marginal rate N/2 / (wall(N) -
wall(N/2)) from a second run over the first N/2 images: what each further
image costs once the engine is up.

Serve: `ocr serve` (2 threads), `ocr serve --ray` with 1 replica (2 CPUs)
and 2 replicas (1 CPU each), each driven by the same load generator
(`bench_server.drive`): C concurrent clients, 8 and 1 images per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

from bench_server import drive, free_port

from ocr.data.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[2]

SHARED = ROOT.parent / "shared" / "data"
BATCH_ENGINES = {
    "local, 2 threads": ["--engine", "local", "--threads", "2"],
    "Ray Data, 1 actor x 2 CPUs": ["--engine", "ray", "--concurrency", "1", "--cpus-per-worker", "2"],
    "Ray Data, 2 actors x 1 CPU": ["--engine", "ray", "--concurrency", "2", "--cpus-per-worker", "1"],
}
SERVERS = {
    "ocr serve, 2 threads": ["--threads", "2"],
    "ocr serve --ray, 1 replica x 2 CPUs": ["--ray", "--replicas", "1", "--cpus-per-replica", "2"],
    "ocr serve --ray, 2 replicas x 1 CPU": ["--ray", "--replicas", "2", "--cpus-per-replica", "1"],
}


def image_list(n: int, folder: Path) -> Path:
    """A list file of ``n`` real crops (or example copies when ../shared is absent)."""
    paths: list[Path] = []
    for name in ("iiit5k_test_even_scenes", "iiit5k_train_even_scenes", "sroie_receipt_lines_part1"):
        if (SHARED / name).is_dir():
            paths += [Path(loc.path) for loc in open_dataset(SHARED / name).locations()]
    if not paths:
        paths = sorted((ROOT / "examples" / "images").glob("*.png"))
    links = folder / "crops"
    links.mkdir(exist_ok=True)
    names = []
    for k, path in enumerate(islice((p for _ in range(n) for p in paths), n)):
        names.append(f"crops/{k:06d}{path.suffix}")  # links: every id unique, even when crops repeat
        (folder / names[-1]).symlink_to(path)
    listing = folder / "images.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def run_batch_engine(listing: Path, args_: list[str], folder: Path) -> dict:
    out, summary = folder / "out.jsonl", folder / "summary.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "ocr", "batch", str(listing), "--out", str(out), "--summary", str(summary),
               "--precision", "auto", *args_]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    figures = json.loads(summary.read_text())
    figures["wall_s"] = wall
    return figures


def start_server(args_: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "ocr", "serve", "--port", str(port), "--precision", "auto", *args_]
    if "--ray" in args_:
        command += ["--ray-http-port", str(free_port())]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    end = time.monotonic() + 300
    while not any(s in log.read_text(errors="replace") for s in ("listening on", "gRPC proxy on port")):
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)
    return proc, f"127.0.0.1:{port}"


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="images for ocr batch (default: 2000)")
    parser.add_argument("--crops", type=int, default=512, help="crops per serving round (default: 512)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent gRPC clients (default: 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict = {"batch": {}, "serve": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_batch:
            listing = image_list(args.images, folder)
            half = args.images // 2
            runs: dict[tuple[str, int], list[dict]] = {}
            for round_ in range(args.repeats):
                for name, engine_args in BATCH_ENGINES.items():
                    for n in (args.images, half):
                        figures = run_batch_engine(listing, [*engine_args, "--limit", str(n)], folder)
                        runs.setdefault((name, n), []).append(figures)
                        print(f"round {round_ + 1} batch {name} {n}: {figures['wall_s']:.1f} s", file=sys.stderr)
            print(f"\nocr batch over {args.images} images; medians of {args.repeats} runs")
            print(f"{'engine':<30} {'wall s':>7} {'lines/s':>8} {'vs local':>9} {'first rows s':>12} "
                  f"{'marginal lines/s':>17} {'vs local':>9}")
            base = None
            for name in BATCH_ENGINES:
                full, part = runs[(name, args.images)], runs[(name, half)]
                wall = statistics.median(r["wall_s"] for r in full)
                row = {
                    "wall_s": wall, "lines_per_s": args.images / wall,
                    "first_rows_s": statistics.median(r["first_rows_s"] for r in full),
                    "marginal_lines_per_s": (args.images - half)
                    / max(1e-9, wall - statistics.median(r["wall_s"] for r in part)),
                }
                base = base or row
                row["vs_local"] = row["lines_per_s"] / base["lines_per_s"]
                row["marginal_vs_local"] = row["marginal_lines_per_s"] / base["marginal_lines_per_s"]
                results["batch"][name] = row
                print(f"{name:<30} {row['wall_s']:7.1f} {row['lines_per_s']:8.1f} {row['vs_local']:8.2f}x "
                      f"{row['first_rows_s']:12.1f} {row['marginal_lines_per_s']:17.1f} "
                      f"{row['marginal_vs_local']:8.2f}x")
        if not args.skip_serve:
            crops = [s.image for s in islice(iter(open_dataset(
                SHARED / "iiit5k_test_even_scenes" if SHARED.is_dir() else ROOT / "examples")), args.crops)]
            crops = (crops * (args.crops // max(1, len(crops)) + 1))[: args.crops]
            rates: dict[tuple[str, int], list[float]] = {}
            for round_ in range(args.repeats):
                for name, server_args in SERVERS.items():
                    proc, target = start_server(server_args, folder / "serve.log")
                    try:
                        asyncio.run(drive(target, crops[:64], 8, 8))  # warm every replica
                        for per_request in (8, 1):
                            seconds, _ = asyncio.run(drive(target, crops, args.clients, per_request))
                            rates.setdefault((name, per_request), []).append(len(crops) / seconds)
                    finally:
                        stop_server(proc)
                    print(f"round {round_ + 1} serve {name} done", file=sys.stderr)
            print(f"\n{args.crops} crops from {args.clients} concurrent clients; images/s, medians of {args.repeats}")
            print(f"{'server':<40} {'8 img/req':>10} {'vs ocr serve':>12} {'1 img/req':>10} {'vs ocr serve':>12}")
            first = next(iter(SERVERS))
            for name in SERVERS:
                cells = []
                for per_request in (8, 1):
                    rate = statistics.median(rates[(name, per_request)])
                    ratio = rate / statistics.median(rates[(first, per_request)])
                    results["serve"][f"{name}, {per_request} img/req"] = {"images_per_s": rate, "vs_ocr_serve": ratio}
                    cells.append(f"{rate:10.1f} {ratio:11.2f}x")
                print(f"{name:<40} {' '.join(cells)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
