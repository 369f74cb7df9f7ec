"""Typed configuration for each command, built once from the parsed arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how to run it."""

    model: str = "english_g2"
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    batch_size: int = 32


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
