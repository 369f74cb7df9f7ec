"""The fine-tuning loop (CTC on real augmented and synthetic lines) and weight-space interpolation."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from crnn.charset import Charset
from crnn.decode import class_log_probs, frames_covering
from crnn.model import CRNN
from crnn.preprocess import bucket_width, resize_to_height, resized_width, stack_batch
from crnn.specs import Normalization

#: Steps timed before the length of the learning-rate schedule is fixed.
TIMING_STEPS = 10
#: Training batches are padded to a multiple of this many columns (inference pads to ``BUCKET_STEP``, 64, so
#: that few shapes recur; in training the padding is compute spent on nothing).
TRAIN_WIDTH_STEP = 16
#: Padded columns a training batch aims at: 16 lines of about 160 columns (plates at height 64, where batch 16
#: was chosen). Long lines (receipts) get fewer lines per batch and so more steps in the same time.
BATCH_COLUMNS = 16 * 160
#: The fewest lines in a batch however long they are (on receipts split 0, batch 4 was worse than 8).
MIN_BATCH = 8


def batch_size_for(images: list[np.ndarray], height: int, most: int) -> int:
    """Lines per training batch: ``most``, or fewer for long lines, so that a step costs about the same.

    ``BATCH_COLUMNS`` over the images' mean width at ``height``, between ``MIN_BATCH`` and ``most``.
    """
    mean_width = float(np.mean([resized_width(im.shape[1], im.shape[0], height) for im in images]))
    return max(min(MIN_BATCH, most), min(most, round(BATCH_COLUMNS / mean_width)))


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 400
    seconds: float = 150.0
    batch_size: int = 16
    synthetic_ratio: float = 0.0
    lr: float = 1e-4
    warmup_steps: int = 20
    eval_every: int = 25
    seed: int = 0
    bf16: bool = False
    #: Return an exponential moving average of the weights over about this share of the planned steps,
    #: started after the warm-up, instead of the last weights (0: the last weights).
    average_share: float = 0.0


class TrainingDiverged(ValueError):
    """A fit whose weights are no longer finite numbers."""


@dataclass
class CurvePoint:
    step: int
    loss: float | None  # mean training loss since the previous point (None before training)
    holdout_loose: float
    holdout_cer: float


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]  # the last weights, on the CPU
    steps: int
    seconds: float
    stopped: str
    curve: list[CurvePoint] = field(default_factory=list)


def interpolate(
    pretrained: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """``weight * tuned + (1 - weight) * pretrained`` for every floating-point tensor (weight-space ensembling).

    ``weight`` 1 is the fine-tuned network and 0 the pretrained one; integer
    buffers (BatchNorm's batch counter) are taken from ``tuned``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"interpolation weight must be in [0, 1], got {weight}")
    return {
        name: torch.lerp(pretrained[name].to(t.dtype), t, weight) if t.is_floating_point() else t.clone()
        for name, t in tuned.items()
    }


def make_batch(
    images: list[np.ndarray], labels: list[str], charset: Charset, height: int, norm: Normalization,
    sequence_length: Callable[[int], int] = CRNN.sequence_length,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images and labels -> (input, concatenated targets, input lengths, target lengths) for CTC.

    Uses the same resize / pad / normalise functions as inference, padded to ``TRAIN_WIDTH_STEP`` only (not to
    the model's ``min_width``, which PP-OCRv6 reads with: a plate's batch then costs three times as much to
    train on); ``sequence_length`` is the network's frames for a width, and each line is read over the frames
    inference reads it over (``frames_covering``).
    """
    resized = [resize_to_height(image, height) for image in images]
    width = bucket_width(max(r.shape[1] for r in resized), TRAIN_WIDTH_STEP)
    batch = stack_batch(resized, width, norm)
    frames = sequence_length(width)
    input_lengths = torch.tensor([frames_covering(r.shape[1], frames) for r in resized], dtype=torch.long)
    encoded = [charset.encode(charset.in_case(label)) for label in labels]
    targets = torch.tensor([i for e in encoded for i in e], dtype=torch.long)
    target_lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
    return torch.from_numpy(batch), targets, input_lengths, target_lengths


def _width_groups(pairs: list[tuple[np.ndarray, str]], height: int) -> list[list[tuple[np.ndarray, str]]]:
    """The batch as one group, or two halves by width when padding to the widest would waste much.

    Lines of very different lengths (receipts) otherwise spend most of their
    compute on padding; similar crops (plates) stay in one group.
    """
    widths = [p[0].shape[1] * height / p[0].shape[0] for p in pairs]
    if len(pairs) < 4 or max(widths) <= 1.5 * float(np.median(widths)):
        return [pairs]
    order = sorted(range(len(pairs)), key=widths.__getitem__)
    half = len(order) // 2
    return [[pairs[i] for i in order[:half]], [pairs[i] for i in order[half:]]]


def update_average(
    averaged: list[torch.Tensor], params: list[nn.Parameter], count: int, horizon: float
) -> list[torch.Tensor]:
    """One step of an exponential moving average of ``params`` with a time constant of ``horizon`` steps.

    ``count`` is the number of updates so far; an empty ``averaged`` starts
    the average at the current weights. Early on the decay is that of a plain
    mean, so the first weights do not dominate.
    """
    current = [p.detach() for p in params]
    if not averaged:
        return [t.clone() for t in current]
    decay = min(1.0 - 1.0 / max(1.0, horizon), count / (count + 1))
    with torch.no_grad():
        for mean, now in zip(averaged, current):
            mean.lerp_(now, 1.0 - decay)
    return averaged


def _freeze_batchnorm(network: nn.Module) -> None:
    """Keep BatchNorm statistics as pretrained: a few dozen images cannot re-estimate them."""
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def fine_tune(
    network: nn.Module,
    draw_real: Callable[[random.Random], tuple[np.ndarray, str]],
    draw_synthetic: Callable[[random.Random], tuple[np.ndarray, str]],
    evaluate: Callable[[nn.Module], tuple[float, float]] | None,
    charset: Charset,
    height: int,
    norm: Normalization,
    config: TrainConfig,
    allow_mask: np.ndarray | None = None,
    progress: bool = True,
    device: torch.device | None = None,
) -> TrainResult:
    """Fine-tune every layer for ``max_steps`` (or ``seconds``); returns the weights.

    ``evaluate(network) -> (loose accuracy, CER)`` on held-out images draws
    the learning curve every ``eval_every`` steps (None: no held-out images).
    The CTC loss reads classes as inference does: with ``charset.case`` a
    letter's two cases count as one, and with ``allow_mask`` (the domain
    allowlist) only allowed classes compete, so training does not push down
    characters the domain never uses but general text needs.
    Stops at ``max_steps`` or after ``seconds``; returns the last weights, or
    with ``average_share`` their moving average over the end of the run (the
    learning curve reads the live weights, not the average).
    """
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    device = device or torch.device("cpu")
    network.to(device)
    params = list(network.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)

    # The cosine decay spans the steps the run will make: ``max_steps``, or fewer when the time budget will
    # end it first (estimated once from the first TIMING_STEPS steps), so the rate has decayed when it stops.
    planned = config.max_steps

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, planned - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    n_synthetic = round(config.batch_size * config.synthetic_ratio)
    start = time.perf_counter()
    loose, cer = evaluate(network) if evaluate else (math.nan, math.nan)
    curve = [CurvePoint(0, None, loose, cer)]
    losses, stopped, step = [], "max steps", 0
    bar = tqdm(total=config.max_steps, desc="adapt", unit="step", disable=not progress, leave=False)
    averaged: list[torch.Tensor] = []
    for step in range(1, config.max_steps + 1):
        network.train()
        _freeze_batchnorm(network)
        pairs = [draw_real(rng) for _ in range(config.batch_size - n_synthetic)]
        pairs += [draw_synthetic(rng) for _ in range(n_synthetic)]
        loss = torch.zeros(())
        for chunk in _width_groups(pairs, height):
            images, targets, input_lengths, target_lengths = make_batch(
                [p[0] for p in chunk], [p[1] for p in chunk], charset, height, norm, network.sequence_length
            )
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                logits = network(images.to(device))
            log_probs = class_log_probs(logits, allow_mask, charset.fold_rounds, floor=-1e4).transpose(0, 1)
            loss = loss + ctc(log_probs, targets, input_lengths, target_lengths) * len(chunk) / len(pairs)
        optimizer.zero_grad(set_to_none=True)
        # A degenerate batch (non-finite loss), or non-finite gradients on a finite loss (clipping scales an
        # infinite norm to NaN), would make every weight NaN: skip the update, not the step's bookkeeping.
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
            finite = bool(torch.isfinite(nn.utils.clip_grad_norm_(network.parameters(), 5.0)))
        if finite:
            optimizer.step()
        if step == TIMING_STEPS:
            per_step = (time.perf_counter() - start) / step
            planned = max(TIMING_STEPS, min(config.max_steps, int(config.seconds / per_step)))
        scheduler.step()
        if config.average_share and step >= config.warmup_steps:
            averaged = update_average(averaged, params, step - config.warmup_steps, config.average_share * planned)
        if finite:
            losses.append(float(loss.detach()))
        bar.update()
        out_of_time = time.perf_counter() - start > config.seconds
        if evaluate and (step % config.eval_every == 0 or step == config.max_steps or out_of_time):
            network.eval()
            loose, cer = evaluate(network)
            recent = losses[-config.eval_every :]
            curve.append(CurvePoint(step, float(np.mean(recent)) if recent else None, loose, cer))
            shown = "-" if curve[-1].loss is None else f"{curve[-1].loss:.3f}"  # None: no update yet had a finite loss
            bar.set_postfix(loss=shown, held_loose=f"{loose:.3f}", held_cer=f"{cer:.3f}")
        if out_of_time:
            stopped = "time budget"
            break
    bar.close()
    if averaged:
        with torch.no_grad():
            for p, mean in zip(params, averaged):
                p.copy_(mean)
    network.eval().cpu()
    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise TrainingDiverged(f"training diverged by step {step}: some weights are no longer finite numbers "
                               "(try a lower --lr, or another --seed)")
    return TrainResult(state, step, time.perf_counter() - start, stopped, curve)
