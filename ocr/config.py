"""Typed configuration for each command, built once from the parsed arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crnn import Recognizer


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how to run it."""

    model: str = "english_g2"
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    batch_size: int = 32

    def load(self) -> Recognizer:
        """The recogniser these options describe (weights checked on load)."""
        return Recognizer(
            self.model, device=self.device, precision=self.precision,  # type: ignore[arg-type]
            threads=self.threads, batch_size=self.batch_size, weights=self.weights,
        )


@dataclass(frozen=True)
class ReadConfig:
    inputs: tuple[Path, ...]
    allow: str | None
    json: bool
    model: ModelOptions


@dataclass(frozen=True)
class EvalConfig:
    dataset: Path
    allow: str | None
    limit: int | None
    json: bool
    out: Path | None
    model: ModelOptions


@dataclass(frozen=True)
class BenchConfig:
    dataset: Path | None
    batch_sizes: tuple[int, ...]
    precisions: tuple[str, ...]
    limit: int
    repeats: int
    json: bool
    model: ModelOptions


@dataclass(frozen=True)
class BatchConfig:
    """``ocr batch``: what to read, where results go, and how to spread the work."""

    input: Path
    out: Path
    allow: str | None
    engine: str  # "auto", "ray" or "local"
    ray_address: str | None
    concurrency: int
    batch_size: int
    cpus_per_worker: float
    gpus_per_worker: float
    limit: int | None
    model: ModelOptions
