"""Orchestrates ``ocr adapt``: data -> cache -> split -> choose on held-out -> fit on everything -> report.

The recipe, chosen by ``scripts/studies/adapt_study.py`` (see docs/studies/adapt.md):

0. the adapted network's input height (english_g2 only; PP-OCRv6 small reads
   48 rows): the pretrained 64 rows, or 48 when the
   pretrained model reads the labelled images at least as well there, and
   its framing: 10% of the rows cut from the top and bottom, or added, when
   that lowers the pretrained loose CER on them by 5% (``ocr.adapt.height``);
   the pretrained fallback keeps its own height and reads whole images;
1. a selection fit on the training share (or one per fold) draws the
   learning curve and gives held-out readings of the fine-tuned network
   interpolated toward the pretrained one at every weight in ``WEIGHTS``;
2. the weight with the lowest held-out CER (then the best loose accuracy,
   then the higher weight) is the candidate, if it is not 1.0 only when it
   reads at least ``MIN_NET_LINES`` more held-out lines better than 1.0 does
   than worse (else 1.0 is);
3. the installed model is fit once more, from the selection fit's weights,
   on every labelled image in the rest of the time (with ``--unlabeled``, the
   selection fit's confident readings of the unlabelled images join them as
   pseudo-labels; see ``AdaptConfig.pseudo_from`` for the other orders);
4. from the candidate weight down, each weight with the pretrained model as
   a gated fallback (a domain gate on the adapted network's own features
   sends lines unlike the labelled images to the pretrained model), and with
   real ``--general`` images also the network alone, is tried until the
   estimated general-text drop (an upper confidence bound) stays within
   ``--max-forgetting``;
5. the verdict compares zero-shot and adapted readings of the held-out
   images pairwise.
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from crnn.charset import Charset
from crnn.decode import Result
from crnn.gate import DomainGate
from crnn.preprocess import MAX_ROW_CROP, MAX_ROW_PAD, frame_rows
from crnn.runtime import cpu_supports_bf16, resolve_device
from crnn.weights import LoadedModel, load_model, save_checkpoint, write_atomically
from ocr.adapt.augment import Augmenter
from ocr.adapt.data import (
    LabelledImage,
    data_hash,
    label_case,
    load_labelled,
    load_unlabelled,
    read_cache,
    split_folds,
    split_holdout,
    split_key,
    store_split,
)
from ocr.adapt.forgetting import ForgettingProbe, gated_drop
from ocr.adapt.gate import fit_gate
from ocr.adapt.general import PROBE_CHARS, gate_general_set, general_lines
from ocr.adapt.height import MIN_HEIGHT, at_height, choose_view
from ocr.adapt.render import Renderer, TextSampler, estimate_style
from ocr.adapt.report import compare_paired, framing_words, is_better, plain, plot_curve, preview_grid, write_report
from ocr.adapt.scoring import Scorer, columns
from ocr.adapt.train import BATCH_COLUMNS, TrainConfig, TrainResult, batch_size_for, fine_tune, interpolate
from ocr.config import PSEUDO_FROM, AdaptConfig
from ocr.datasets import DatasetError
from ocr.fonts import find_fonts
from ocr.metrics import bootstrap, net_lines_better, score

#: Seconds kept back from --max-minutes, when the selection fit's time is set, for everything but training.
RESERVE_SECONDS = 45.0
#: Seconds allowed for writing the report, plot and checkpoint after the last reading.
WRITE_SECONDS = 5.0
#: Safety factor on the measured reading times from which the final fit's time is set.
READ_MARGIN = 1.3
#: Gate fits and passes over the forgetting probe kept back for after the final fit: one weight's worth, and the
#: selection fit's gate at the weight installed. Further options are tried while time is left (``out_of_time``).
SEARCHED_GATES = 2
SEARCHED_PROBE_PASSES = 2
#: No fit is given less time than this, whatever the budget (the run then overruns --max-minutes).
MIN_FIT_SECONDS = 10.0
#: Share of the training time given to the selection fit(s); the final fit gets the rest (it is worth more).
SELECTION_SHARE = 0.4
#: Interpolation weights tried: 1 is the fine-tuned network, 0 the pretrained one.
WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
#: A weight below 1.0 must read this many more held-out lines better than 1.0 than worse (fewer character
#: errors, line by line) to become the candidate: on 20 held-out images one line is noise (an MNIST split moved
#: to 0.5 on a single digit). Forgetting is bounded separately, from the candidate down.
MIN_NET_LINES = 2
#: The pseudo-labels of ``--unlabeled``, written beside the report.
PSEUDO_LABELS = "pseudo_labels.tsv"


@dataclass(frozen=True)
class Option:
    """One installable model: the fine-tuned network at ``weight``, alone or with the gated pretrained fallback."""

    weight: float
    fallback: bool = False

    def __str__(self) -> str:
        return f"{self.weight}" + (" + gate" if self.fallback else "")


def after_final_fit_seconds(gate_seconds: float, probe_seconds: float, unlabelled_probes: float) -> float:
    """Seconds to keep back from the final fit for the work after it, estimated from the same work done before.

    That is the options tried at one interpolation weight: its gate
    (``gate_seconds``: a gate's fit as timed on the selection fit, scaled to
    all the images) and two passes over the forgetting probe (its reading and
    the gate's features; ``probe_seconds`` is one), and one more gate on the
    selection fit for the held-out readings of a lower weight. Then the
    unlabelled images' readings (``unlabelled_probes`` probes' worth of
    columns at the model's view), all with ``READ_MARGIN``, and the writing.
    Keeping back two weights' worth gave PP-OCRv6 small's final fit on plates
    split 0 only 25 s, and the run ended 57 s inside its 3 minutes; the
    search now tries a further weight only while the time for it is left
    (``out_of_time`` in ``run_adapt``).
    """
    return READ_MARGIN * (SEARCHED_GATES * gate_seconds + probe_seconds * (SEARCHED_PROBE_PASSES + unlabelled_probes)
                          ) + WRITE_SECONDS


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Synthesis:
    """What one training set draws from: its augmented images, rendered domain lines and general text."""

    train: list[LabelledImage]
    renderer: Renderer
    sampler: TextSampler
    augmenter: Augmenter
    #: Share of the rendered lines that are general text (replay) rather than domain text.
    general_share: float
    general_renderer: Renderer
    general_texts: list[str]
    #: Pseudo-labelled images: drawn like ``train``, but not the renderer's styles or texts, nor a gate's domain.
    pseudo: list[LabelledImage] = field(default_factory=list)
    #: The network's framing (``crnn.preprocess.frame_rows``), applied to real images before augmentation.
    row_crop: float = 0.0

    @classmethod
    def build(cls, config: AdaptConfig, fonts, train: list[LabelledImage], height: int,
              pseudo: Sequence[LabelledImage] = (), row_crop: float = 0.0) -> _Synthesis:
        renderer = Renderer(fonts, [estimate_style(s.gray) for s in train], config.seed)
        rendered = config.synthetic_ratio + config.replay_ratio
        return cls(train, renderer, TextSampler([s.label for s in train], config.seed, config.allow),
                   Augmenter(config.seed, height), config.replay_ratio / rendered if rendered else 0.0,
                   Renderer(fonts, [], config.seed + 1), general_lines(5000, config.seed + 1), list(pseudo),
                   row_crop)

    def draw_real(self, rng) -> tuple[np.ndarray, str]:
        """A labelled (or pseudo-labelled) image, framed as the network reads it, then augmented."""
        i = rng.randrange(len(self.train) + len(self.pseudo))
        s = self.train[i] if i < len(self.train) else self.pseudo[i - len(self.train)]
        return self.augmenter(frame_rows(s.gray, self.row_crop)), s.label

    def draw_synthetic(self, rng) -> tuple[np.ndarray, str]:
        if self.general_share and rng.random() < self.general_share:
            text = rng.choice(self.general_texts)
            return self.augmenter(self.general_renderer.render(text)), text
        text = self.sampler.sample()
        return self.augmenter(self.renderer.render(text)), text

    def draw_general(self, rng) -> np.ndarray:
        return self.augmenter(self.general_renderer.render(rng.choice(self.general_texts)))

    def domain_examples(self) -> list[np.ndarray]:
        """The labelled images and one augmented copy of each: the domain side of a gate (unframed: the gate
        frames what it reads)."""
        return [s.gray for s in self.train] + [self.augmenter(s.gray) for s in self.train]


@dataclass
class _SelectionFit:
    """One selection fit: its weights, its training images' synthesis and the held-out images it was read on."""

    state: dict[str, torch.Tensor]
    synthesis: _Synthesis
    scorer: Scorer


def _fit(
    config: AdaptConfig, base: LoadedModel, device: torch.device, fonts, train: list[LabelledImage],
    charset: Charset, scorer: Scorer | None, train_config: TrainConfig, progress: bool,
    start: dict[str, torch.Tensor] | None = None, extra: Sequence[LabelledImage] = (),
) -> tuple[dict[str, torch.Tensor], TrainResult, _Synthesis]:
    """Fine-tune a copy of the base network (or of ``start`` weights) on ``train`` and ``extra`` (pseudo-labelled
    images, which train but stay out of the synthesis' domain examples, so out of the gate); returns the weights.

    The loss reads classes as ``charset`` does (case folding, allowlist);
    ``scorer`` (held-out images) draws the learning curve.
    """
    synthesis = _Synthesis.build(config, fonts, train, base.input_height, extra, base.row_crop)
    draw_general = synthesis.draw_general if train_config.general_per_step else None
    network = copy.deepcopy(base.network)
    if start is not None:
        network.load_state_dict(start)
    for p in network.parameters():
        p.requires_grad_(True)
    result = fine_tune(network, synthesis.draw_real, synthesis.draw_synthetic, scorer, draw_general, charset,
                       base.input_height, base.normalization, train_config, charset.allow_mask(config.allow),
                       progress, device)
    return result.state, result, synthesis


def _network(base: LoadedModel, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    network = copy.deepcopy(base.network)
    network.load_state_dict(state)
    return network.eval()


def _preference(predictions: list[str], labels: list[str], weight: float) -> tuple[float, float, float]:
    """Sort key of a candidate weight: lower CER, then higher loose accuracy, then the higher weight.

    CER comes first because it counts every character: on 20 held-out lines
    loose accuracy moves in steps of one line, and a single line decided a
    receipts split for weight 0.3 although its CER was the worst of all
    weights. A tie goes to the more adapted network: domain accuracy rarely
    falls as the weight rises, and forgetting is bounded separately.
    """
    s = score(predictions, labels)
    return (s.cer, -s.loose, -weight)


def choose_option(
    candidate: float, estimated_drop: Callable[[Option], float], max_forgetting: float,
    gate_first: Callable[[float], bool] = lambda weight: False,
    out_of_time: Callable[[], bool] = lambda: False, gate: bool = True, alone: bool = True,
) -> tuple[Option, dict[Option, float]]:
    """The first option whose estimated drop is within ``max_forgetting``, from ``candidate`` down.

    ``candidate`` is one of ``WEIGHTS``. At each weight up to it, the network alone is
    tried, then with the gate; but where ``gate_first(weight)`` (the gated
    pair reads the held-out images as well as the network alone), the gate
    comes first: it costs that domain nothing and keeps general text, where
    the estimate of the network alone can fall short of the real drop (two
    MNIST report splits installed a network alone at estimates of 1.4 and 2.7
    points and really lost 3.0 and 6.1). Lowering the weight costs a few
    points of domain accuracy per 0.1. If nothing fits, or ``out_of_time()``
    turns true before something does, the option with the lowest estimate so
    far is returned (the first tried of equals): the last one tried could be a
    network alone at weight 0.3 that forgets far more than a gated pair (plates
    split 1 of the framing round installed one, losing 20 points of IIIT5K
    words). Without ``gate`` only the network alone is tried, without
    ``alone`` only the gated pair. Also returns every estimate made.
    """
    drops: dict[Option, float] = {}
    for weight in [w for w in WEIGHTS if w <= candidate]:
        if not (gate and alone):
            order: tuple[bool, ...] = (gate,)
        else:
            order = (True, False) if gate_first(weight) else (False, True)
        for gated in order:
            option = Option(weight, gated)
            drops[option] = estimated_drop(option)
            if drops[option] <= max_forgetting:
                return option, drops
            if out_of_time():
                return min(drops, key=drops.__getitem__), drops
    return min(drops, key=drops.__getitem__), drops


def routed(own: list[Result], pretrained: list[Result], inside: np.ndarray, gate: DomainGate | None = None
           ) -> list[Result]:
    """Readings as a gated pair gives them: its own inside the domain, the pretrained model's outside unless
    ``gate`` keeps its own there (``DomainGate.keeps_own``; no ``gate``: never)."""
    return [a if keep or (gate is not None and gate.keeps_own(a, b)) else b
            for a, b, keep in zip(own, pretrained, inside)]


def _texts(readings: list[Result]) -> list[str]:
    return [r.text for r in readings]


def _pseudo_labels(
    config: AdaptConfig, base: LoadedModel, network: torch.nn.Module, charset: Charset, images: list[LabelledImage]
) -> list[tuple[LabelledImage, float]]:
    """Confident readings of the unlabelled ``images`` by ``network``, as training samples with their confidence."""
    # At the forgetting probe's precision, so that the time kept back for this reading scales from the probe's.
    reader = Scorer([im.gray for im in images], [""] * len(images), base, config.allow, charset, precision="auto")
    results = reader.read(network)
    return [(LabelledImage(im.name, im.gray, r.text), r.confidence) for im, r in zip(images, results)
            if r.confidence >= config.pseudo_confidence and r.text.strip()]


def _self_training_report(config: AdaptConfig, read: int, pseudo: list[tuple[LabelledImage, float]]) -> dict:
    _log(f"adapt: self-training with {len(pseudo)} of {read} unlabelled images read with confidence >= "
         f"{config.pseudo_confidence}")
    return {"source": str(config.unlabeled), "read": read, "kept": len(pseudo),
            "min_confidence": config.pseudo_confidence, "read_by": config.pseudo_from,
            "file": PSEUDO_LABELS}


def pseudo_labels_tsv(pseudo: list[tuple[LabelledImage, float]]) -> str:
    """The pseudo-labels a fit trained on: ``image<TAB>reading<TAB>confidence`` per line, under a header."""
    rows = ["# image\treading\tconfidence"]
    rows += [f"{im.name}\t{im.label}\t{confidence:.4f}" for im, confidence in pseudo]
    return "\n".join(rows) + "\n"


def run_adapt(config: AdaptConfig, progress: bool = True) -> dict:
    """Run the whole job; returns the report (also written to ``config.out``)."""
    start = time.perf_counter()
    if not 0 <= config.max_forgetting <= 1:
        raise ValueError("--max-forgetting must be between 0 and 1")
    if config.height is not None and config.height < MIN_HEIGHT:
        raise ValueError(f"--height must be at least {MIN_HEIGHT}")
    if config.row_crop is not None and not -MAX_ROW_PAD <= config.row_crop <= MAX_ROW_CROP:
        raise ValueError(f"--row-crop must be between {-MAX_ROW_PAD} and {MAX_ROW_CROP}")
    if config.pseudo_from not in PSEUDO_FROM:
        raise ValueError(f"pseudo_from must be one of {', '.join(PSEUDO_FROM)}, not {config.pseudo_from!r}")
    device = resolve_device(config.device)
    base = load_model(config.base_model)
    if config.height not in (None, base.input_height) and not getattr(base.network, "READS_ANY_HEIGHT", True):
        raise ValueError(f"{base.name} reads {base.input_height}-row lines only: leave --height out")
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
    unlabelled = load_unlabelled(config.unlabeled, warn=_log) if config.unlabeled else []
    fingerprint = data_hash(samples)
    if config.folds:
        folds = split_folds(samples, config.folds, config.seed)
        cache = config.out / "cache" / split_key(fingerprint, config.seed, f"folds{config.folds}")
        if not cache.is_dir():
            store_split(cache, samples, [])
        everything = read_cache(cache / "train")
        held_sets = [[everything[i] for i in fold] for fold in folds]
        train_sets = [[s for i, s in enumerate(everything) if i not in held] for held in map(set, folds)]
        _log(f"adapt: {len(everything)} images from {config.data} in {config.folds} folds (cache {cache})")
    else:
        train_idx, held_idx = split_holdout(samples, config.holdout, config.seed)
        cache = config.out / "cache" / split_key(fingerprint, config.seed, config.holdout)
        if not cache.is_dir():
            store_split(cache, [samples[i] for i in train_idx], [samples[i] for i in held_idx])
        train_sets, held_sets = [read_cache(cache / "train")], [read_cache(cache / "holdout")]
        everything = train_sets[0] + held_sets[0]
        _log(f"adapt: {len(train_sets[0])} training and {len(held_sets[0])} held-out images from {config.data} "
             f"(cache {cache}); the installed model then learns from all {len(everything)}")

    view = choose_view(base, [s.gray for s in everything], [s.label for s in everything], config.allow, charset,
                       config.height, config.row_crop)
    height, height_cer = view.height, view.height_cer
    if height != base.input_height:
        _log(f"adapt: training and reading at {height} rows instead of {base.input_height} "
             + (f"(the pretrained model reads the labelled images as well there: CER {height_cer[height]:.3f} "
                f"against {height_cer[base.input_height]:.3f}, and a line costs about half as much to train on)"
                if height_cer else "(--height)"))
    if view.row_crop:
        _log(f"adapt: the adapted network reads each image with {framing_words(view.row_crop)} "
             + (f"(the pretrained model's loose CER on the labelled images: {view.framing_cer[view.row_crop]:.3f} "
                f"against {view.framing_cer[0.0]:.3f} unframed)" if view.framing_cer else "(--row-crop)"))
    # The adapted network's view; ``base`` stays the pretrained model as shipped (its fallback reads unframed).
    model = at_height(base, height, view.row_crop)
    label_chars = "".join(sorted({ch for s in samples for ch in s.label} | set(config.allow or "")))
    fonts = find_fonts(label_chars, config.fonts)
    probe = ForgettingProbe.build(base, charset, config.general, model)
    if config.max_forgetting < 1:
        _ = probe.pretrained  # the gated options' fallback readings, read before the time is shared out
    bf16 = cpu_supports_bf16() if device.type == "cpu" else torch.cuda.is_bf16_supported()
    # The selection fits share SELECTION_SHARE of the budget; the final fit (and the self-training fit) get what
    # is left of --max-minutes when they start, less the measured cost of the work after them.
    deadline = start + config.max_minutes * 60
    budget = max(MIN_FIT_SECONDS, deadline - time.perf_counter() - RESERVE_SECONDS)
    batch_size = batch_size_for([s.gray for s in everything], height, config.batch_size)
    if batch_size < config.batch_size:
        _log(f"adapt: {batch_size} lines per training batch (long lines: about {BATCH_COLUMNS} columns a batch)")
    train_config = TrainConfig(
        max_steps=config.max_steps, seconds=budget * SELECTION_SHARE / len(train_sets),
        batch_size=batch_size,
        synthetic_ratio=config.synthetic_ratio + config.replay_ratio, lr=config.peak_lr, seed=config.seed,
        trainable=config.trainable, bf16=bf16, l2_pull=config.l2_pull, distill_weight=config.distill_weight,
        average_share=config.average_share,
        general_per_step=6 if config.distill_weight else 0,
    )
    pretrained = base.network.state_dict()

    # 1. Selection: held-out readings at every interpolation weight.
    zero_shot: list[str] = []
    by_weight: dict[float, list[Result]] = {w: [] for w in WEIGHTS}
    pretrained_readings: list[Result] = []  # the pretrained network read in the adapted model's case
    labels: list[str] = []
    fold_rows, step_counts, fits = [], [], []
    for k, (train, held) in enumerate(zip(train_sets, held_sets)):
        if config.folds:
            _log(f"adapt: fold {k + 1}/{config.folds}: {len(train)} training, {len(held)} held-out")
        scorer = Scorer([s.gray for s in held], [s.label for s in held], model, config.allow, charset)
        tuned, result, synthesis = _fit(config, model, device, fonts, train, charset, scorer, train_config, progress)
        fits.append(_SelectionFit(tuned, synthesis, scorer))
        step_counts.append(result.steps)
        pretrained_scorer = scorer if model is base else Scorer([s.gray for s in held], [s.label for s in held],
                                                                base, config.allow, charset)
        zero = pretrained_scorer.predict(base.network, base.charset)
        zero_shot += zero
        labels += scorer.labels
        pretrained_readings += pretrained_scorer.read(base.network)
        for w in WEIGHTS:
            by_weight[w] += scorer.read(_network(base, interpolate(pretrained, tuned, w)))
        fold_rows.append({"fold": k + 1, "train": len(train), "n": len(held), "steps": result.steps,
                          "zero_shot_loose": score(zero, scorer.labels).loose,
                          "adapted_loose": score(_texts(by_weight[1.0][-len(held):]), scorer.labels).loose})
    curve = result.curve
    gate_general = gate_general_set(find_fonts(PROBE_CHARS))
    held_inside: dict[float, np.ndarray] = {}
    held_gated: dict[float, list[Result]] = {}

    def held_out(option: Option) -> list[str]:
        """Held-out readings of an option; with the gate, each fold's network gets its own gate."""
        readings = by_weight[option.weight]
        if not option.fallback:
            return _texts(readings)
        if option.weight not in held_inside:
            flags, gated, start = [], [], 0
            for fit in fits:
                net = _network(base, interpolate(pretrained, fit.state, option.weight))
                gate = fit_gate(net, model, fit.synthesis.domain_examples(), gate_general)
                flags.append(gate.in_domain(fit.scorer.features(net)))
                end = start + len(flags[-1])
                gated += routed(readings[start:end], pretrained_readings[start:end], flags[-1], gate)
                start = end
            held_inside[option.weight], held_gated[option.weight] = np.concatenate(flags), gated
        return _texts(held_gated[option.weight])

    best = min(WEIGHTS, key=lambda w: _preference(held_out(Option(w)), labels, w))
    margin = net_lines_better(held_out(Option(best)), held_out(Option(1.0)), labels)
    candidate = best if margin >= MIN_NET_LINES else 1.0
    gate_start = time.perf_counter()
    if config.max_forgetting < 1 and config.gate:
        held_out(Option(candidate, True))  # the first gate the choice below needs, fitted (and timed) now
    gate_seconds = (time.perf_counter() - gate_start) / len(fits) * len(everything) / len(train_sets[0])

    # 2. The installed model: every labelled image (and confident pseudo-labels), in the time left.
    self_training: dict | None = None
    pseudo: list[tuple[LabelledImage, float]] = []
    if unlabelled and config.pseudo_from != "final":
        # Read by the selection fit, so that the whole final fit (with "both", its first half) trains on them too.
        pseudo = _pseudo_labels(config, model, _network(base, tuned), charset, unlabelled)
        self_training = _self_training_report(config, len(unlabelled), pseudo)
    two_fits = bool(unlabelled) and config.pseudo_from != "selection"
    unlabelled_probes = (columns([im.gray for im in unlabelled], height, model.row_crop) / max(1, probe.columns)
                         if two_fits else 0.0)
    after_fit = after_final_fit_seconds(gate_seconds, probe.adapted_read_seconds, unlabelled_probes)
    left = deadline - time.perf_counter() - after_fit
    final_config = replace(train_config, seconds=max(MIN_FIT_SECONDS, left / (2 if two_fits else 1)))
    _log(f"adapt: final fit on all {len(everything)} labelled images"
         + (f" and {len(pseudo)} pseudo-labelled ones" if pseudo else ""))
    tuned, final_result, synthesis = _fit(config, model, device, fonts, everything, charset, None, final_config,
                                          progress, tuned if config.warm_start else None,
                                          extra=[im for im, _ in pseudo])
    if two_fits:
        # The first half's weights read them (again): a better reader than the selection fit, which saw fewer
        # labelled images and fewer steps.
        first_kept = len(pseudo) if config.pseudo_from == "both" else None
        pseudo = _pseudo_labels(config, model, _network(base, tuned), charset, unlabelled)
        self_training = _self_training_report(config, len(unlabelled), pseudo)
        if first_kept is not None:
            self_training["kept_by_selection"] = first_kept
        # Continuing from the first half's weights: restarting from the pretrained ones threw that fit away
        # (it lost 5 points on plates split 1 of an earlier round; docs/studies/adapt.md). With no confident reading the
        # labelled images alone fill the second half, so its time is never left unused.
        first_half = final_result
        tuned, final_result, _ = _fit(config, model, device, fonts, everything, charset, None,
                                      final_config, progress, tuned, extra=[im for im, _ in pseudo])
        final_result = replace(final_result, steps=first_half.steps + final_result.steps,
                               seconds=first_half.seconds + final_result.seconds)

    # 3. Interpolation weight and fallback: from the candidate down until the estimated forgetting fits.
    probe_readings: dict[float, list[Result]] = {}
    gates: dict[float, tuple[DomainGate, np.ndarray]] = {}  # weight -> (gate, probe lines it keeps)

    def probe_texts(option: Option) -> list[str]:
        def network_w() -> torch.nn.Module:
            return _network(base, interpolate(pretrained, tuned, option.weight))

        if option.weight not in probe_readings:
            probe_readings[option.weight] = probe.read(network_w())
        readings = probe_readings[option.weight]
        if not option.fallback:
            return _texts(readings)
        if option.weight not in gates:
            net = network_w()
            gate = fit_gate(net, model, synthesis.domain_examples(), gate_general)
            gates[option.weight] = gate, gate.in_domain(probe.scorer.features(net))
        # The gate's override (``DomainGate.keeps_own``) is left out here: on the plates models the rendered probe
        # shows it as up to 3 points more loss at its margin (6 at margin 0), where the real IIIT5K drop rose by 0.1
        # at most (docs/studies/adapt.md, "Keeping a surer adapted reading").
        return _texts(routed(readings, probe.pretrained, gates[option.weight][1]))

    slowest_option = 0.0  # seconds the costliest option tried so far took to estimate

    def estimated_drop(option: Option) -> float:
        nonlocal slowest_option
        began = time.perf_counter()
        drop = probe.estimate(probe_texts(option))
        if option.fallback and not probe.real:  # measured on real --general images, the drop needs no floor
            drop = gated_drop(drop, probe.estimate(probe_texts(Option(option.weight))),
                              gates[option.weight][0].threshold)
        slowest_option = max(slowest_option, time.perf_counter() - began)
        return drop

    def out_of_time() -> bool:
        """No time for one more option like the costliest so far, and a gate on the selection fit for the
        option installed (its held-out readings)."""
        return time.perf_counter() + slowest_option + gate_seconds > deadline - WRITE_SECONDS

    def gate_first(weight: float) -> bool:
        if config.max_forgetting >= 1:  # "domain only": one network, no gate to turn domain lines away
            return False
        gated, alone = score(held_out(Option(weight, True)), labels), score(held_out(Option(weight)), labels)
        return gated.cer <= alone.cer and gated.loose >= alone.loose

    # With the rendered probe, the network alone is not an option: its estimate understated the real IIIT5K drop
    # in 3 of 5 PP-OCRv6 runs (receipt lines and rendered replay lines look like the probe's printed words, so
    # the probe misses what scene words lose), where no gated option's did (docs/studies/adapt.md).
    alone = probe.real or config.max_forgetting >= 1 or not config.gate
    option, drops = choose_option(candidate, estimated_drop, config.max_forgetting, gate_first, out_of_time,
                                  config.gate, alone)
    weight = option.weight
    network = _network(base, interpolate(pretrained, tuned, weight))
    adapted = held_out(option)
    holdout = {
        "n": len(labels),
        "zero_shot": bootstrap(zero_shot, labels, config.seed),
        "adapted": bootstrap(adapted, labels, config.seed),
        "paired": compare_paired(zero_shot, adapted, labels, config.seed),
        "by_weight": {str(w): score(held_out(Option(w)), labels).as_dict() for w in WEIGHTS},
        # Each gated weight needs its own gate on the selection fit: only the installed one is read.
        "by_weight_with_gate": {str(weight): score(adapted, labels).as_dict()} if option.fallback else {},
    }
    if config.folds:
        holdout["folds"] = fold_rows
    within = drops[option] <= config.max_forgetting
    selection = {
        "candidate": candidate, "best_held_out": best, "net_lines_better_than_1": margin,
        "min_net_lines": MIN_NET_LINES,
        "weight": weight, "fallback": option.fallback,
        "max_forgetting": config.max_forgetting,
        "estimated_drops": {str(o): d for o, d in drops.items()}, "within_limit": within,
    }
    if option.fallback:
        selection["gate"] = {"held_out_kept": float(held_inside[weight].mean()),
                             "probe_kept": float(gates[weight][1].mean()), "threshold": gates[weight][0].threshold,
                             "override_margin": gates[weight][0].override_margin}
    if not within:
        _log(f"adapt: warning: even {option} leaves an estimated general-text drop of "
             f"{100 * drops[option]:.1f} points (limit {100 * config.max_forgetting:.1f})")
    general = probe.report(probe_texts(option), config.seed)  # the chosen option was always read
    general["estimated_drop"] = drops[option]  # with a gate, the leak floor included
    better = is_better(holdout["adapted"], holdout["zero_shot"])
    installed = better or config.force
    name = config.out.name
    config.out.mkdir(parents=True, exist_ok=True)
    report = {
        "name": name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "better": better,
        "installed": installed,
        "data": {"source": str(config.data), "train": len(everything), "held_out": len(labels),
                 "sha256": fingerprint, "case": charset.case},
        # The input height the adapted network reads at, and the pretrained CER on the labelled images at each
        # height tried (empty with --height).
        "height": {"rows": height, "pretrained": base.input_height,
                   "labelled_cer": {str(h): c for h, c in height_cer.items()}},
        # The share of the rows cut from the top and bottom of each image (negative: added) and the pretrained
        # loose CER on the labelled images at each framing tried (empty with --row-crop).
        "framing": {"row_crop": view.row_crop,
                    "labelled_loose_cer": {str(c): v for c, v in view.framing_cer.items()}},
        "holdout": holdout,
        "selection": selection,
        "general": general,
        "self_training": self_training,
        "training": {
            "steps": final_result.steps, "selection_steps": step_counts, "seconds": final_result.seconds,
            "batch_size": batch_size, "lr": train_config.lr,
            "stopped": final_result.stopped, "fonts": len(fonts), "bf16": bf16,
            "curve": [asdict(p) for p in curve],
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "base": {"model": base.name, "sha256": base.sha256},
    }
    if self_training:
        write_atomically(config.out / PSEUDO_LABELS, pseudo_labels_tsv(pseudo).encode())
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
            alphabet=charset.alphabet, case=charset.case, input_height=height, row_crop=model.row_crop,
            normalization=base.normalization, fallback=base if option.fallback else None,
            gate=gates[weight][0] if option.fallback else None,
            provenance={"name": name, "base_model": base.name, "base_sha256": base.sha256,
                        "training_data_sha256": fingerprint, "created": report["created"],
                        "interpolation_weight": weight, "options": report["options"]},
            metrics=plain({"holdout": {k: v for k, v in holdout.items() if k != "by_weight"}, "general": general}),
        )
    write_report(config.out, report)
    return report
