"""Orchestrates ``ocr adapt``: data -> cache -> split -> synthesis -> fine-tuning -> report -> checkpoint."""

from __future__ import annotations

import copy
import datetime as dt
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from crnn import InvalidImageError, Recognizer
from crnn.charset import Charset
from crnn.preprocess import prepare, to_gray
from crnn.runtime import cpu_supports_bf16, resolve_device
from crnn.weights import LoadedModel, load_model, save_checkpoint
from ocr.adapt.augment import Augmenter
from ocr.adapt.data import (
    LabelledImage,
    data_hash,
    label_case,
    load_labelled,
    read_cache,
    split_folds,
    split_holdout,
    split_key,
    store_split,
)
from ocr.adapt.general import general_lines, rendered_general_set
from ocr.adapt.render import Renderer, TextSampler, estimate_style, find_fonts
from ocr.adapt.report import is_better, plain, plot_curve, preview_grid, write_report
from ocr.adapt.train import TrainConfig, TrainResult, fine_tune
from ocr.datasets import DatasetError, open_dataset
from ocr.metrics import bootstrap, score

#: Seconds kept back from --max-minutes for the final evaluations and writing.
RESERVE_SECONDS = 20.0


@dataclass(frozen=True)
class AdaptConfig:
    data: Path
    out: Path
    base_model: str = "english_g2"
    holdout: float = 0.25
    #: K-fold cross-validation instead of one held-out share (None: use ``holdout``).
    folds: int | None = None
    seed: int = 0
    max_minutes: float = 3.0
    max_steps: int = 400
    fonts: tuple[Path, ...] = ()
    synthetic_ratio: float = 0.5
    allow: str | None = None
    device: str = "auto"
    normalize: tuple[str, ...] = ()
    general: Path | None = None
    preview: bool = False
    force: bool = False
    batch_size: int = 16
    lr: float = 1e-4
    trainable: str = "all"
    #: "auto" (fold case when every label letter is one case), "keep", "upper" or "lower".
    case: str = "auto"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Scorer:
    """Reads a fixed list of images with any network, through the same Recognizer as inference.

    ``charset`` is the adapted model's (it may fold letter case); pass the
    base model's to :meth:`predict` to read as zero-shot.
    """

    def __init__(
        self, images: list[np.ndarray], labels: list[str], base: LoadedModel, allow: str | None, charset: Charset,
    ) -> None:
        self.prepared = [prepare(im, base.input_height) for im in images]
        self.labels = labels
        self.base = base
        self.allow = allow
        self.charset = charset

    def predict(self, network: torch.nn.Module, charset: Charset | None = None) -> list[str]:
        """Texts read by ``network`` with ``charset`` (default: the adapted model's)."""
        model = replace(self.base, network=copy.deepcopy(network).eval(), charset=charset or self.charset)
        recognizer = Recognizer(model, device="cpu", precision="fp32")
        return [r.text for r in recognizer.recognize_prepared(self.prepared, self.allow)]

    def __call__(self, network: torch.nn.Module) -> tuple[float, float]:
        s = score(self.predict(network), self.labels)
        return s.loose, s.cer


@dataclass
class _Synthesis:
    """What one training set draws from: its augmented images, rendered lines and general text."""

    train: list[LabelledImage]
    renderer: Renderer
    sampler: TextSampler
    augmenter: Augmenter

    @classmethod
    def build(cls, config: AdaptConfig, fonts, train: list[LabelledImage], height: int) -> _Synthesis:
        renderer = Renderer(fonts, [estimate_style(s.gray) for s in train], config.seed)
        return cls(train, renderer, TextSampler([s.label for s in train], config.seed, config.allow),
                   Augmenter(config.seed, height))

    def draw_real(self, rng) -> tuple[np.ndarray, str]:
        s = self.train[rng.randrange(len(self.train))]
        return self.augmenter(s.gray), s.label

    def draw_synthetic(self, rng) -> tuple[np.ndarray, str]:
        text = self.sampler.sample()
        return self.augmenter(self.renderer.render(text)), text


def _fit(
    config: AdaptConfig, base: LoadedModel, device: torch.device, fonts, train: list[LabelledImage],
    scorer: _Scorer, train_config: TrainConfig, progress: bool,
) -> tuple[torch.nn.Module, TrainResult, _Synthesis]:
    """Fine-tune a copy of the base network on ``train``; ``scorer`` drives early stopping.

    The loss reads classes as ``scorer.charset`` does (case folding, allowlist).
    """
    synthesis = _Synthesis.build(config, fonts, train, base.input_height)
    general_renderer = Renderer(fonts, [], config.seed + 1)
    general_texts = general_lines(5000, config.seed + 1)

    def draw_general(rng) -> np.ndarray:
        return synthesis.augmenter(general_renderer.render(rng.choice(general_texts)))

    network = copy.deepcopy(base.network)
    for p in network.parameters():
        p.requires_grad_(True)
    charset = scorer.charset
    result = fine_tune(network, synthesis.draw_real, synthesis.draw_synthetic, scorer, draw_general, charset,
                       base.input_height, base.normalization, train_config, charset.allow_mask(config.allow),
                       progress, device)
    network.load_state_dict(result.best_state)
    return network, result, synthesis


def run_adapt(config: AdaptConfig, progress: bool = True) -> dict:
    """Run the whole job; returns the report (also written to ``config.out``)."""
    start = time.perf_counter()
    device = resolve_device(config.device)
    base = load_model(config.base_model)
    samples = load_labelled(config.data, base.charset, config.normalize, warn=_log)
    case = label_case([s.label for s in samples], base.charset.alphabet) if config.case == "auto" else (
        None if config.case == "keep" else config.case)
    charset = Charset(base.charset.alphabet, case)
    if case:
        _log(f"adapt: reading letters case-insensitively and writing them {case}-case, as the labels are "
             f"(--case keep to learn case)")
    if config.allow:
        charset.allow_mask(config.allow)
        outside = sorted({ch for s in samples for ch in s.label if ch not in config.allow and ch != " "})
        if outside:
            raise DatasetError(f"labels use characters outside --allow: {''.join(outside)!r}")
    fingerprint = data_hash(samples)
    if config.folds:
        folds = split_folds(samples, config.folds, config.seed)
        cache = config.out / "cache" / split_key(fingerprint, config.seed, f"folds{config.folds}")
        if not cache.is_dir():
            store_split(cache, samples, [])
        cached = read_cache(cache / "train")
        held_sets = [[cached[i] for i in fold] for fold in folds]
        train_sets = [[s for i, s in enumerate(cached) if i not in held] for held in map(set, folds)]
        _log(f"adapt: {len(cached)} images from {config.data} in {config.folds} folds (cache {cache})")
    else:
        train_idx, held_idx = split_holdout(samples, config.holdout, config.seed)
        cache = config.out / "cache" / split_key(fingerprint, config.seed, config.holdout)
        if not cache.is_dir():
            store_split(cache, [samples[i] for i in train_idx], [samples[i] for i in held_idx])
        train_sets, held_sets = [read_cache(cache / "train")], [read_cache(cache / "holdout")]
        cached = train_sets[0]
        _log(f"adapt: {len(cached)} training and {len(held_sets[0])} held-out images from {config.data} "
             f"(cache {cache})")

    label_chars = "".join(sorted({ch for s in samples for ch in s.label} | set(config.allow or "")))
    fonts = find_fonts(label_chars, config.fonts)
    bf16 = cpu_supports_bf16() if device.type == "cpu" else torch.cuda.is_bf16_supported()
    # K folds and one final fit on everything share the budget; a single split gets it all.
    fits = len(train_sets) + (1 if config.folds else 0)
    budget = max(10.0, config.max_minutes * 60 - (time.perf_counter() - start) - RESERVE_SECONDS) / fits
    train_config = TrainConfig(
        max_steps=config.max_steps, seconds=budget, batch_size=config.batch_size,
        synthetic_ratio=config.synthetic_ratio, lr=config.lr, seed=config.seed, trainable=config.trainable, bf16=bf16,
    )
    zero_shot_predictions: list[str] = []
    adapted_predictions: list[str] = []
    labels: list[str] = []
    fold_rows = []
    for k, (train, held) in enumerate(zip(train_sets, held_sets)):
        if config.folds:
            _log(f"adapt: fold {k + 1}/{config.folds}: {len(train)} training, {len(held)} held-out")
        scorer = _Scorer([s.gray for s in held], [s.label for s in held], base, config.allow, charset)
        network, result, synthesis = _fit(config, base, device, fonts, train, scorer, train_config, progress)
        zero, adapted = scorer.predict(base.network, base.charset), scorer.predict(network)
        zero_shot_predictions += zero
        adapted_predictions += adapted
        labels += scorer.labels
        fold_rows.append({"fold": k + 1, "train": len(train), "n": len(held), "best_step": result.best_step,
                          "zero_shot_loose": score(zero, scorer.labels).loose,
                          "adapted_loose": score(adapted, scorer.labels).loose})
    curve = result.curve
    if config.folds:
        # The installed model: all images, for the median number of steps that held-out folds chose.
        steps = int(np.median([row["best_step"] for row in fold_rows]))
        _log(f"adapt: final fit on all {len(cached)} images for {steps} steps (median best step of the folds)")
        final_config = replace(train_config, max_steps=max(1, steps), keep_last=True)
        scorer = _Scorer([s.gray for s in cached], [s.label for s in cached], base, config.allow, charset)
        if steps:
            network, result, synthesis = _fit(config, base, device, fonts, cached, scorer, final_config, progress)
        else:
            network = copy.deepcopy(base.network)
    holdout = {
        "n": len(labels),
        "zero_shot": bootstrap(zero_shot_predictions, labels, config.seed),
        "adapted": bootstrap(adapted_predictions, labels, config.seed),
    }
    if config.folds:
        holdout["folds"] = fold_rows
    general = _forgetting_check(config, base, network, fonts, charset)
    better = is_better(holdout["adapted"], holdout["zero_shot"])
    installed = better or config.force
    name = config.out.name
    config.out.mkdir(parents=True, exist_ok=True)
    report = {
        "name": name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "better": better,
        "installed": installed,
        "data": {"source": str(config.data), "train": len(cached) if config.folds else len(train_sets[0]),
                 "sha256": fingerprint, "case": charset.case},
        "holdout": holdout,
        "general": general,
        "training": {
            "steps": result.steps, "best_step": result.best_step, "seconds": result.seconds,
            "stopped": result.stopped, "fonts": len(fonts), "bf16": bf16,
            "curve": [asdict(p) for p in curve],
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "base": {"model": base.name, "sha256": base.sha256},
    }
    plot_curve(config.out / "learning_curve.png", curve, fold_rows[-1]["zero_shot_loose"])
    if config.preview:
        rng = np.random.default_rng(config.seed)
        picks = [synthesis.train[int(i)] for i in rng.integers(0, len(synthesis.train), 6)]
        preview_grid(config.out / "preview.png", [
            ("real", [s.gray for s in picks]),
            ("augmented", [synthesis.augmenter(s.gray) for s in picks]),
            ("synthetic", [synthesis.augmenter(synthesis.renderer.render(synthesis.sampler.sample()))
                           for _ in range(6)]),
        ])
    report["wall_seconds"] = time.perf_counter() - start
    if installed:
        save_checkpoint(
            config.out / "model.pt", network, architecture=str(base.metadata.get("architecture", "vgg_bilstm_ctc")),
            alphabet=charset.alphabet, case=charset.case, input_height=base.input_height,
            normalization=base.normalization,
            provenance={"name": name, "base_model": base.name, "base_sha256": base.sha256,
                        "training_data_sha256": fingerprint, "created": report["created"],
                        "options": report["options"]},
            metrics=plain({"holdout": holdout, "general": general}),
        )
    write_report(config.out, report)
    return report


def _forgetting_check(
    config: AdaptConfig, base: LoadedModel, network: torch.nn.Module, fonts, charset: Charset
) -> dict:
    """Loose accuracy on general text before and after (whole alphabet, no allowlist)."""
    if config.general is not None:
        images, labels, source = [], [], str(config.general)
        for _, sample in zip(range(500), open_dataset(config.general)):
            try:
                images.append(to_gray(sample.image))
                labels.append(sample.label)
            except InvalidImageError:
                continue  # an unreadable image says nothing about forgetting
    else:
        images, labels = rendered_general_set(fonts)
        source = "rendered general text"
    scorer = _Scorer(images, labels, base, None, charset)
    return {
        "source": source,
        "n": len(labels),
        "zero_shot": bootstrap(scorer.predict(base.network, base.charset), labels, config.seed),
        "adapted": bootstrap(scorer.predict(network), labels, config.seed),
    }
