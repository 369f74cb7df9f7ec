"""``ocr adapt`` in phases: prepare -> selection fit -> final fit -> choose the installed option -> report.

The recipe, chosen by ``scripts/studies/adapt_study.py`` (see docs/studies/adapt.md):

0. ``prepare``: the labelled images are split (a held-out share, or folds)
   and the adapted network's view is chosen: its input height (english_g2
   only; PP-OCRv6 small reads 48 rows), the pretrained 64 rows or 48 when the
   pretrained model reads the labelled images at least as well there, and its
   framing: 10% of the rows cut from the top and bottom, or added, when that
   lowers the pretrained loose CER on them by 5% (``ocr.adapt.height``); the
   pretrained fallback keeps its own height and reads whole images;
1. ``select``: a selection fit on the training share (or one per fold) draws
   the learning curve and gives held-out readings of the fine-tuned network
   interpolated toward the pretrained one at every weight in ``WEIGHTS``;
   the weight with the lowest held-out CER (then the best loose accuracy,
   then the higher weight) is the candidate, if it is not 1.0 only when it
   reads at least ``MIN_NET_LINES`` more held-out lines better than 1.0 does
   than worse (else 1.0 is);
2. ``final_fit``: the installed network is fit once more, from the selection
   fit's weights, on every labelled image in the rest of the time (with
   ``--unlabeled``, the selection fit's confident readings of the unlabelled
   images join them as pseudo-labels; see ``AdaptConfig.pseudo_from`` for
   the other orders);
3. ``choose``: from the candidate weight down, each weight with the
   pretrained model as a gated fallback (a domain gate on the adapted
   network's own features sends lines unlike the labelled images to the
   pretrained model), and with real ``--general`` images also the network
   alone, is tried until the estimated general-text drop (an upper confidence
   bound) stays within ``--max-forgetting``;
4. ``build_report`` and ``write_outputs``: the verdict compares zero-shot and
   adapted readings of the held-out images pairwise; the checkpoint is
   written only when the adapted model is better (or with ``--force``).
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from crnn.charset import Charset
from crnn.preprocess import MAX_ROW_CROP, MAX_ROW_PAD
from crnn.runtime import cpu_supports_bf16, resolve_device
from crnn.weights import LoadedModel, load_model, save_checkpoint, write_atomically
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
from ocr.adapt.forgetting import ForgettingProbe
from ocr.adapt.general import PROBE_CHARS, gate_general_set
from ocr.adapt.height import MIN_HEIGHT, ViewChoice, at_height, choose_view
from ocr.adapt.options import (
    WEIGHTS,
    FoldFit,
    HeldOutReadings,
    Option,
    ProbeReadings,
    choose_option,
    network_at,
    texts,
)
from ocr.adapt.recipe import SHIPPED, Recipe
from ocr.adapt.report import compare_paired, framing_words, is_better, plain, plot_curve, preview_grid, write_report
from ocr.adapt.scoring import Scorer, columns
from ocr.adapt.synthesis import Synthesis
from ocr.adapt.train import BATCH_COLUMNS, TrainConfig, TrainResult, batch_size_for, fine_tune, interpolate
from ocr.config import PSEUDO_FROM, AdaptConfig
from ocr.data.datasets import DatasetError
from ocr.eval.metrics import bootstrap, net_lines_better, score
from ocr.fonts import find_fonts

__all__ = ["WEIGHTS", "AdaptConfig", "Option", "Recipe", "choose_option", "run_adapt"]

#: Seconds kept back from --max-minutes, when the selection fit's time is set, for everything but training.
RESERVE_SECONDS = 45.0
#: Seconds allowed for writing the report, plot and checkpoint after the last reading.
WRITE_SECONDS = 5.0
#: Safety factor on the measured reading times from which the final fit's time is set.
READ_MARGIN = 1.3
#: Gate fits and passes over the forgetting probe kept back for after the final fit: one weight's worth, and the
#: selection fit's gate at the weight installed. Further options are tried while time is left (``choose``).
SEARCHED_GATES = 2
SEARCHED_PROBE_PASSES = 2
#: No fit is given less time than this, whatever the budget (the run then overruns --max-minutes).
MIN_FIT_SECONDS = 10.0
#: Share of the training time given to the selection fit(s); the final fit gets the rest (it is worth more).
SELECTION_SHARE = 0.4
#: A weight below 1.0 must read this many more held-out lines better than 1.0 than worse (fewer character
#: errors, line by line) to become the candidate: on 20 held-out images one line is noise (an MNIST split moved
#: to 0.5 on a single digit). Forgetting is bounded separately, from the candidate down.
MIN_NET_LINES = 2
#: The pseudo-labels of ``--unlabeled``, written beside the report.
PSEUDO_LABELS = "pseudo_labels.tsv"


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
    (``choose``).
    """
    return READ_MARGIN * (SEARCHED_GATES * gate_seconds + probe_seconds * (SEARCHED_PROBE_PASSES + unlabelled_probes)
                          ) + WRITE_SECONDS


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_config(config: AdaptConfig) -> None:
    """Refuse option values no run can use (before anything is loaded)."""
    if not 0 <= config.max_forgetting <= 1:
        raise ValueError("--max-forgetting must be between 0 and 1")
    if config.height is not None and config.height < MIN_HEIGHT:
        raise ValueError(f"--height must be at least {MIN_HEIGHT}")
    if config.row_crop is not None and not -MAX_ROW_PAD <= config.row_crop <= MAX_ROW_CROP:
        raise ValueError(f"--row-crop must be between {-MAX_ROW_PAD} and {MAX_ROW_CROP}")
    if config.pseudo_from not in PSEUDO_FROM:
        raise ValueError(f"pseudo_from must be one of {', '.join(PSEUDO_FROM)}, not {config.pseudo_from!r}")


# --- Phase 0: the data, its split, the network's view and the training settings --------------------------------


@dataclass
class Prepared:
    """What every later phase reads: the run's settings, models, images and clock."""

    config: AdaptConfig
    recipe: Recipe
    device: torch.device
    #: The pretrained model as shipped (a gated pair's fallback reads as it does).
    base: LoadedModel
    #: The adapted network's view of it: the chosen height and framing (``base`` itself when both are its own).
    model: LoadedModel
    view: ViewChoice
    #: How the adapted model reads: the base's alphabet with the labels' case folding.
    charset: Charset
    fingerprint: str
    #: Every labelled image (read from the split cache), then the selection fits' training and held-out sets.
    everything: list[LabelledImage]
    train_sets: list[list[LabelledImage]]
    held_sets: list[list[LabelledImage]]
    unlabelled: list[LabelledImage]
    fonts: list[Path]
    probe: ForgettingProbe
    bf16: bool
    batch_size: int
    #: The selection fits' settings; the final fit's differ in their time only.
    train_config: TrainConfig
    started: float
    deadline: float


def _charset(config: AdaptConfig, base: LoadedModel, labels: list[str]) -> Charset:
    case = label_case(labels, base.charset.alphabet) if config.case == "auto" else (
        None if config.case == "keep" else config.case)
    if case:
        _log(f"adapt: reading letters case-insensitively and writing them {case}-case, as the labels are "
             f"(--case keep to learn case)")
    charset = Charset(base.charset.alphabet, case)
    if config.allow:
        charset.allow_mask(config.allow)
        outside = sorted({ch for label in labels for ch in label if ch not in config.allow and ch != " "})
        if outside:
            raise DatasetError(f"labels use characters outside --allow: {''.join(outside)!r}")
    return charset


def _split(config: AdaptConfig, samples: list[LabelledImage], fingerprint: str
           ) -> tuple[list[LabelledImage], list[list[LabelledImage]], list[list[LabelledImage]]]:
    """Every image, and the training and held-out sets of each selection fit, read back from the split's cache."""
    if config.folds:
        folds = split_folds(samples, config.folds, config.seed)
        cache = config.out / "cache" / split_key(fingerprint, config.seed, f"folds{config.folds}")
        if not cache.is_dir():
            store_split(cache, samples, [])
        everything = read_cache(cache / "train")
        held_sets = [[everything[i] for i in fold] for fold in folds]
        train_sets = [[s for i, s in enumerate(everything) if i not in held] for held in map(set, folds)]
        _log(f"adapt: {len(everything)} images from {config.data} in {config.folds} folds (cache {cache})")
        return everything, train_sets, held_sets
    train_idx, held_idx = split_holdout(samples, config.holdout, config.seed)
    cache = config.out / "cache" / split_key(fingerprint, config.seed, config.holdout)
    if not cache.is_dir():
        store_split(cache, [samples[i] for i in train_idx], [samples[i] for i in held_idx])
    train, held = read_cache(cache / "train"), read_cache(cache / "holdout")
    _log(f"adapt: {len(train)} training and {len(held)} held-out images from {config.data} "
         f"(cache {cache}); the installed model then learns from all {len(train) + len(held)}")
    return train + held, [train], [held]


def _log_view(view: ViewChoice, base: LoadedModel) -> None:
    if view.height != base.input_height:
        cer = view.height_cer
        _log(f"adapt: training and reading at {view.height} rows instead of {base.input_height} "
             + (f"(the pretrained model reads the labelled images as well there: CER {cer[view.height]:.3f} "
                f"against {cer[base.input_height]:.3f}, and a line costs about half as much to train on)"
                if cer else "(--height)"))
    if view.row_crop:
        _log(f"adapt: the adapted network reads each image with {framing_words(view.row_crop)} "
             + (f"(the pretrained model's loose CER on the labelled images: {view.framing_cer[view.row_crop]:.3f} "
                f"against {view.framing_cer[0.0]:.3f} unframed)" if view.framing_cer else "(--row-crop)"))


def prepare(config: AdaptConfig, recipe: Recipe = SHIPPED, started: float | None = None) -> Prepared:
    """Load the base model and the labelled images, split them, choose the network's view, build the forgetting
    probe and set the selection fits' time (``--max-minutes`` counts from ``started``, default now)."""
    started = time.perf_counter() if started is None else started
    check_config(config)
    device = resolve_device(config.device)
    base = load_model(config.base_model)
    if config.height not in (None, base.input_height) and not getattr(base.network, "READS_ANY_HEIGHT", True):
        raise ValueError(f"{base.name} reads {base.input_height}-row lines only: leave --height out")
    samples = load_labelled(config.data, base.charset, config.normalize, warn=_log, drafts=config.include_drafts)
    charset = _charset(config, base, [s.label for s in samples])
    unlabelled = load_unlabelled(config.unlabeled, warn=_log) if config.unlabeled else []
    fingerprint = data_hash(samples)
    everything, train_sets, held_sets = _split(config, samples, fingerprint)
    view = choose_view(base, [s.gray for s in everything], [s.label for s in everything], config.allow, charset,
                       config.height, config.row_crop)
    _log_view(view, base)
    model = at_height(base, view.height, view.row_crop)
    label_chars = "".join(sorted({ch for s in samples for ch in s.label} | set(config.allow or "")))
    fonts = find_fonts(label_chars, config.fonts)
    probe = ForgettingProbe.shared(base, charset, config.general, model)
    if config.max_forgetting < 1:
        _ = probe.pretrained  # the gated options' fallback readings, read before the time is shared out
    bf16 = cpu_supports_bf16() if device.type == "cpu" else torch.cuda.is_bf16_supported()
    # The selection fits share SELECTION_SHARE of the budget; the final fit (and the self-training fit) get what
    # is left of --max-minutes when they start, less the measured cost of the work after them.
    deadline = started + config.max_minutes * 60
    budget = max(MIN_FIT_SECONDS, deadline - time.perf_counter() - RESERVE_SECONDS)
    batch_size = batch_size_for([s.gray for s in everything], view.height, config.batch_size)
    if batch_size < config.batch_size:
        _log(f"adapt: {batch_size} lines per training batch (long lines: about {BATCH_COLUMNS} columns a batch)")
    train_config = TrainConfig(
        max_steps=config.max_steps, seconds=budget * SELECTION_SHARE / len(train_sets), batch_size=batch_size,
        synthetic_ratio=config.synthetic_ratio, lr=config.peak_lr, seed=config.seed, bf16=bf16,
        average_share=recipe.average_share,
    )
    return Prepared(config, recipe, device, base, model, view, charset, fingerprint, everything, train_sets,
                    held_sets, unlabelled, fonts, probe, bf16, batch_size, train_config, started, deadline)


def fit_network(
    prep: Prepared, train: list[LabelledImage], scorer: Scorer | None, train_config: TrainConfig, progress: bool,
    start: dict[str, torch.Tensor] | None = None, extra: Sequence[LabelledImage] = (),
) -> tuple[dict[str, torch.Tensor], TrainResult, Synthesis]:
    """Fine-tune a copy of the base network (or of ``start`` weights) on ``train`` and ``extra`` (pseudo-labelled
    images, which train but stay out of the synthesis' domain examples, so out of the gate); returns the weights.

    The loss reads classes as ``prep.charset`` does (case folding, allowlist);
    ``scorer`` (held-out images) draws the learning curve.
    """
    config, model = prep.config, prep.model
    synthesis = Synthesis.build(prep.fonts, train, model.input_height, config.seed, config.allow, extra,
                                model.row_crop)
    network = copy.deepcopy(model.network)
    if start is not None:
        network.load_state_dict(start)
    for p in network.parameters():
        p.requires_grad_(True)
    result = fine_tune(network, synthesis.draw_real, synthesis.draw_synthetic, scorer, prep.charset,
                       model.input_height, model.normalization, train_config, prep.charset.allow_mask(config.allow),
                       progress, prep.device)
    return result.state, result, synthesis


# --- Phase 1: selection fits and the candidate weight ----------------------------------------------------------


@dataclass
class Selection:
    """The selection fits, the held-out readings of every weight, and the candidate weight they chose."""

    held: HeldOutReadings
    #: The weight the held-out images prefer (``preference``), and how many more lines it reads better than 1.0
    #: reads them than worse.
    best: float
    margin: int
    #: ``best`` if ``margin`` reaches ``MIN_NET_LINES``, else 1.0.
    candidate: float
    #: Seconds one gate on all the labelled images takes (timed on the selection fits, scaled).
    gate_seconds: float
    fold_rows: list[dict]
    steps: list[int]
    #: The last selection fit's learning curve (the report's plot).
    curve: list

    @property
    def last_state(self) -> dict[str, torch.Tensor]:
        """The last selection fit's weights (where the final fit continues from)."""
        return self.held.fits[-1].state


def preference(predictions: list[str], labels: list[str], weight: float) -> tuple[float, float, float]:
    """Sort key of a candidate weight: lower CER, then higher loose accuracy, then the higher weight.

    CER comes first because it counts every character: on 20 held-out lines
    loose accuracy moves in steps of one line, and a single line decided a
    receipts split for weight 0.3 although its CER was the worst of all
    weights. A tie goes to the more adapted network: domain accuracy rarely
    falls as the weight rises, and forgetting is bounded separately.
    """
    s = score(predictions, labels)
    return (s.cer, -s.loose, -weight)


def select(prep: Prepared, progress: bool = True) -> Selection:
    """Fit on each training set, read its held-out images at every weight in ``WEIGHTS``, pick the candidate."""
    config, base, model, charset = prep.config, prep.base, prep.model, prep.charset
    pretrained = base.network.state_dict()
    zero_shot: list[str] = []
    by_weight: dict[float, list] = {w: [] for w in WEIGHTS}
    pretrained_readings: list = []  # the pretrained network read in the adapted model's case
    labels: list[str] = []
    fold_rows, steps, fits = [], [], []
    result = None
    for k, (train, held) in enumerate(zip(prep.train_sets, prep.held_sets)):
        if config.folds:
            _log(f"adapt: fold {k + 1}/{config.folds}: {len(train)} training, {len(held)} held-out")
        scorer = Scorer([s.gray for s in held], [s.label for s in held], model, config.allow, charset)
        tuned, result, synthesis = fit_network(prep, train, scorer, prep.train_config, progress)
        fits.append(FoldFit(tuned, synthesis, scorer))
        steps.append(result.steps)
        pretrained_scorer = scorer if model is base else Scorer([s.gray for s in held], [s.label for s in held],
                                                                base, config.allow, charset)
        zero = pretrained_scorer.predict(base.network, base.charset)
        zero_shot += zero
        labels += scorer.labels
        pretrained_readings += pretrained_scorer.read(base.network)
        for w in WEIGHTS:
            by_weight[w] += scorer.read(network_at(base, interpolate(pretrained, tuned, w)))
        fold_rows.append({"fold": k + 1, "train": len(train), "n": len(held), "steps": result.steps,
                          "zero_shot_loose": score(zero, scorer.labels).loose,
                          "adapted_loose": score(texts(by_weight[1.0][-len(held):]), scorer.labels).loose})
    held_out = HeldOutReadings(base, model, fits, labels, zero_shot, pretrained_readings, by_weight,
                               gate_general_set(find_fonts(PROBE_CHARS)))
    best = min(WEIGHTS, key=lambda w: preference(held_out.texts(Option(w)), labels, w))
    margin = net_lines_better(held_out.texts(Option(best)), held_out.texts(Option(1.0)), labels)
    candidate = best if margin >= MIN_NET_LINES else 1.0
    gate_start = time.perf_counter()
    if config.max_forgetting < 1 and prep.recipe.gate:
        held_out.texts(Option(candidate, True))  # the first gate the choice needs, fitted (and timed) now
    gate_seconds = ((time.perf_counter() - gate_start) / len(fits) * len(prep.everything)
                    / len(prep.train_sets[0]))
    return Selection(held_out, best, margin, candidate, gate_seconds, fold_rows, steps, result.curve)


# --- Phase 2: the final fit on every labelled image (and pseudo-labels) ----------------------------------------


@dataclass
class FinalFit:
    """The installed network's weights before interpolation, the training set they drew from, and the
    pseudo-labels of ``--unlabeled`` they trained on."""

    state: dict[str, torch.Tensor]
    result: TrainResult
    synthesis: Synthesis
    pseudo: list[tuple[LabelledImage, float]]
    self_training: dict | None


def _pseudo_labels(prep: Prepared, network: torch.nn.Module) -> list[tuple[LabelledImage, float]]:
    """Confident readings of the unlabelled images by ``network``, as training samples with their confidence."""
    config, images = prep.config, prep.unlabelled
    # At the forgetting probe's precision, so that the time kept back for this reading scales from the probe's.
    reader = Scorer([im.gray for im in images], [""] * len(images), prep.model, config.allow, prep.charset,
                    precision="auto")
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


def final_fit(prep: Prepared, selection: Selection, progress: bool = True) -> FinalFit:
    """Fit on every labelled image in the time left, less what choosing and writing will take."""
    config, base = prep.config, prep.base
    self_training: dict | None = None
    pseudo: list[tuple[LabelledImage, float]] = []
    if prep.unlabelled and config.pseudo_from != "final":
        # Read by the selection fit, so that the whole final fit (with "both", its first half) trains on them too.
        pseudo = _pseudo_labels(prep, network_at(base, selection.last_state))
        self_training = _self_training_report(config, len(prep.unlabelled), pseudo)
    two_fits = bool(prep.unlabelled) and config.pseudo_from != "selection"
    unlabelled_probes = (columns([im.gray for im in prep.unlabelled], prep.model.input_height, prep.model.row_crop)
                         / max(1, prep.probe.columns) if two_fits else 0.0)
    after_fit = after_final_fit_seconds(selection.gate_seconds, prep.probe.adapted_read_seconds, unlabelled_probes)
    left = prep.deadline - time.perf_counter() - after_fit
    final_config = replace(prep.train_config, seconds=max(MIN_FIT_SECONDS, left / (2 if two_fits else 1)))
    _log(f"adapt: final fit on all {len(prep.everything)} labelled images"
         + (f" and {len(pseudo)} pseudo-labelled ones" if pseudo else ""))
    start = selection.last_state if prep.recipe.warm_start else None
    tuned, result, synthesis = fit_network(prep, prep.everything, None, final_config, progress, start,
                                           extra=[im for im, _ in pseudo])
    if two_fits:
        # The first half's weights read them (again): a better reader than the selection fit, which saw fewer
        # labelled images and fewer steps.
        first_kept = len(pseudo) if config.pseudo_from == "both" else None
        pseudo = _pseudo_labels(prep, network_at(base, tuned))
        self_training = _self_training_report(config, len(prep.unlabelled), pseudo)
        if first_kept is not None:
            self_training["kept_by_selection"] = first_kept
        # Continuing from the first half's weights: restarting from the pretrained ones threw that fit away
        # (it lost 5 points on plates split 1 of an earlier round; docs/studies/adapt.md). With no confident reading
        # the labelled images alone fill the second half, so its time is never left unused.
        first_half = result
        tuned, result, _ = fit_network(prep, prep.everything, None, final_config, progress, tuned,
                                       extra=[im for im, _ in pseudo])
        result = replace(result, steps=first_half.steps + result.steps, seconds=first_half.seconds + result.seconds)
    return FinalFit(tuned, result, synthesis, pseudo, self_training)


# --- Phase 3: the installed option ------------------------------------------------------------------------------


@dataclass
class Choice:
    """The option installed, every estimate made on the way, and its network (interpolated)."""

    option: Option
    drops: dict[Option, float]
    network: torch.nn.Module
    probe: ProbeReadings
    max_forgetting: float

    @property
    def within_limit(self) -> bool:
        """Whether the installed option's estimated drop is within ``--max-forgetting``."""
        return self.drops[self.option] <= self.max_forgetting


def choose(prep: Prepared, selection: Selection, fit: FinalFit) -> Choice:
    """From the candidate weight down, the first option whose estimated general-text drop is within
    ``--max-forgetting`` (``choose_option``), while the time lasts."""
    config, recipe = prep.config, prep.recipe
    probe = ProbeReadings(prep.base, prep.model, prep.probe, fit.state, fit.synthesis,
                          selection.held.gate_general)

    def out_of_time() -> bool:
        """No time for one more option like the costliest so far, and a gate on the selection fit for the
        option installed (its held-out readings)."""
        return time.perf_counter() + probe.slowest + selection.gate_seconds > prep.deadline - WRITE_SECONDS

    def gate_first(weight: float) -> bool:
        if config.max_forgetting >= 1:  # "domain only": one network, no gate to turn domain lines away
            return False
        held, labels = selection.held, selection.held.labels
        gated, alone = score(held.texts(Option(weight, True)), labels), score(held.texts(Option(weight)), labels)
        return gated.cer <= alone.cer and gated.loose >= alone.loose

    # With the rendered probe, the network alone is not an option: its estimate understated the real IIIT5K drop
    # in 3 of 5 PP-OCRv6 runs (receipt lines and rendered replay lines look like the probe's printed words, so
    # the probe misses what scene words lose), where no gated option's did (docs/studies/adapt.md).
    alone = prep.probe.real or config.max_forgetting >= 1 or not recipe.gate
    option, drops = choose_option(selection.candidate, probe.estimate, config.max_forgetting, gate_first,
                                  out_of_time, recipe.gate, alone)
    choice = Choice(option, drops, probe.network(option.weight), probe, config.max_forgetting)
    if not choice.within_limit:
        _log(f"adapt: warning: even {option} leaves an estimated general-text drop of "
             f"{100 * drops[option]:.1f} points (limit {100 * config.max_forgetting:.1f})")
    return choice


# --- Phase 4: the report and the outputs ------------------------------------------------------------------------


def build_report(prep: Prepared, selection: Selection, fit: FinalFit, choice: Choice) -> dict:
    """The run's report (``report.json``): held-out verdict, selection, general text, training, options."""
    config, base, held = prep.config, prep.base, selection.held
    option, weight, labels = choice.option, choice.option.weight, held.labels
    adapted = held.texts(option)
    holdout = {
        "n": len(labels),
        "zero_shot": bootstrap(held.zero_shot, labels, config.seed),
        "adapted": bootstrap(adapted, labels, config.seed),
        "paired": compare_paired(held.zero_shot, adapted, labels, config.seed),
        "by_weight": {str(w): score(held.texts(Option(w)), labels).as_dict() for w in WEIGHTS},
        # Each gated weight needs its own gate on the selection fit: only the installed one is read.
        "by_weight_with_gate": {str(weight): score(adapted, labels).as_dict()} if option.fallback else {},
    }
    if config.folds:
        holdout["folds"] = selection.fold_rows
    chosen = {
        "candidate": selection.candidate, "best_held_out": selection.best,
        "net_lines_better_than_1": selection.margin, "min_net_lines": MIN_NET_LINES,
        "weight": weight, "fallback": option.fallback,
        "max_forgetting": config.max_forgetting,
        "estimated_drops": {str(o): d for o, d in choice.drops.items()}, "within_limit": choice.within_limit,
    }
    if option.fallback:
        gate, probe_kept = choice.probe.gates[weight]
        chosen["gate"] = {"held_out_kept": float(held.inside[weight].mean()), "probe_kept": float(probe_kept.mean()),
                          "threshold": gate.threshold, "override_margin": gate.override_margin}
    general = prep.probe.report(choice.probe.texts(option), config.seed)  # the chosen option was always read
    general["estimated_drop"] = choice.drops[option]  # with a gate, the leak floor included
    better = is_better(holdout["adapted"], holdout["zero_shot"])
    view = prep.view
    return {
        "name": config.out.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "better": better,
        "installed": better or config.force,
        "data": {"source": str(config.data), "train": len(prep.everything), "held_out": len(labels),
                 "sha256": prep.fingerprint, "case": prep.charset.case},
        # The input height the adapted network reads at, and the pretrained CER on the labelled images at each
        # height tried (empty with --height).
        "height": {"rows": view.height, "pretrained": base.input_height,
                   "labelled_cer": {str(h): c for h, c in view.height_cer.items()}},
        # The share of the rows cut from the top and bottom of each image (negative: added) and the pretrained
        # loose CER on the labelled images at each framing tried (empty with --row-crop).
        "framing": {"row_crop": view.row_crop,
                    "labelled_loose_cer": {str(c): v for c, v in view.framing_cer.items()}},
        "holdout": holdout,
        "selection": chosen,
        "general": general,
        "self_training": fit.self_training,
        "training": {
            "steps": fit.result.steps, "selection_steps": selection.steps, "seconds": fit.result.seconds,
            "batch_size": prep.batch_size, "lr": prep.train_config.lr,
            "stopped": fit.result.stopped, "fonts": len(prep.fonts), "bf16": prep.bf16,
            "curve": [asdict(p) for p in selection.curve],
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "recipe": asdict(prep.recipe),
        "base": {"model": base.name, "sha256": base.sha256},
    }


def write_outputs(prep: Prepared, selection: Selection, fit: FinalFit, choice: Choice, report: dict) -> None:
    """The learning curve, the preview, the pseudo-labels, the checkpoint (when installed) and the report, each
    written atomically; the report goes last."""
    config, base = prep.config, prep.base
    config.out.mkdir(parents=True, exist_ok=True)
    if fit.self_training:
        write_atomically(config.out / PSEUDO_LABELS, pseudo_labels_tsv(fit.pseudo).encode())
    plot_curve(config.out / "learning_curve.png", selection.curve, selection.fold_rows[-1]["zero_shot_loose"])
    if config.preview:
        synthesis = fit.synthesis
        rng = np.random.default_rng(config.seed)
        picks = [synthesis.train[int(i)] for i in rng.integers(0, len(synthesis.train), 6)]
        preview_grid(config.out / "preview.png", [
            ("real", [s.gray for s in picks]),
            ("augmented", [synthesis.augmenter(s.gray) for s in picks]),
            ("synthetic", [synthesis.augmenter(synthesis.renderer.render(synthesis.sampler.sample()))
                           for _ in range(6)]),
        ])
    report["wall_seconds"] = time.perf_counter() - prep.started
    if report["installed"]:
        option, holdout = choice.option, report["holdout"]
        save_checkpoint(
            config.out / "model.pt", choice.network,
            architecture=str(base.metadata.get("architecture", "vgg_bilstm_ctc")),
            alphabet=prep.charset.alphabet, case=prep.charset.case, input_height=prep.view.height,
            row_crop=prep.model.row_crop, normalization=base.normalization,
            fallback=base if option.fallback else None,
            gate=choice.probe.gates[option.weight][0] if option.fallback else None,
            provenance={"name": report["name"], "base_model": base.name, "base_sha256": base.sha256,
                        "training_data_sha256": prep.fingerprint, "created": report["created"],
                        "interpolation_weight": option.weight, "options": report["options"],
                        "recipe": report["recipe"]},
            metrics=plain({"holdout": {k: v for k, v in holdout.items() if k != "by_weight"},
                           "general": report["general"]}),
        )
    write_report(config.out, report)


def run_adapt(config: AdaptConfig, progress: bool = True, recipe: Recipe = SHIPPED) -> dict:
    """Run the whole job; returns the report (also written to ``config.out``)."""
    prep = prepare(config, recipe)
    selection = select(prep, progress)
    fit = final_fit(prep, selection, progress)
    choice = choose(prep, selection, fit)
    report = build_report(prep, selection, fit, choice)
    write_outputs(prep, selection, fit, choice, report)
    return report
