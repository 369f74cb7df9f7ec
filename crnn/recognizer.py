"""The ``Recognizer``: owns one model on one device and reads lists of images."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from crnn.calibration import shipped_calibration
from crnn.charset import Charset
from crnn.constrained import Constraint
from crnn.decode import (
    FRAME_STRIDE,
    Result,
    best_path,
    class_log_probs,
    frames_covering,
    labelled_result,
    reject_below,
)
from crnn.errors import InvalidImageError
from crnn.gate import can_tap, feature_tap, pooled_features
from crnn.graph import recognizer_graph
from crnn.lcnet_svtr import LCNetSVTR
from crnn.preprocess import (
    BUCKET_STEP,
    ImageInput,
    PreparedImage,
    frame_rows,
    framed_height,
    invert,
    padded_width,
    prepare,
    resize_to_height,
    stack_batch,
    stretch_contrast,
)
from crnn.quantize import load_stats, quantized_network, stats_path
from crnn.runtime import (
    Precision,
    Runtime,
    autocast_dtype,
    engine_for,
    resolve_device,
    resolve_precision,
    resolve_runtime,
)
from crnn.specs import DEFAULT_MODEL, MODEL_SPECS
from crnn.weights import LoadedModel, load_model

#: Lines whose confidence is below this are read again with stretched contrast
#: and the more confident reading is kept (None or 0 turns it off).
DEFAULT_CONTRAST_RETRY = 0.1
#: Lines whose confidence is still below this are also read inverted (light text on dark, as on signs and
#: screens) and the more confident reading is kept (None or 0: off). Kept as low as the contrast retry's: at
#: 0.5 the line confidence, a product over characters, swaps right receipt lines for shorter wrong readings,
#: at 0.1 no shared set loses more than 2 lines (of 1,175) and the plate crops gain 2 of 223 (docs/studies/decoding.md).
DEFAULT_POLARITY_RETRY: float | None = 0.1
#: Default padded columns per image in a batch's width budget (a 4:1 word at height 64).
DEFAULT_COLUMNS_PER_IMAGE = 256


@lru_cache(maxsize=64)
def _subset_charset(charset: Charset, classes: tuple[int, ...]) -> Charset:
    """The charset of a class subset (``classes[0]`` is the blank): index ``k`` is ``charset``'s ``classes[k]``."""
    return Charset("".join(charset.char(c) for c in classes[1:]), charset.case)


@lru_cache(maxsize=64)
def _cached_constraint(
    charset: Charset, pattern: str | None, lexicon: tuple[str, ...] | None, ignore_case: bool, beam_width: int
) -> Constraint | None:
    return Constraint.build(charset, pattern, lexicon, ignore_case, beam_width)


def _blank_mean(scores: torch.Tensor) -> float:
    """The mean blank probability over frames of log-scores ``(T, C)``: an empty reading's confidence."""
    return float(scores.log_softmax(-1)[:, 0].exp().mean())


def _per_image(value, kind: type | tuple[type, ...], count: int, what: str) -> list:
    """One value per image: ``value`` repeated when it is a single one (None or a ``kind``), else checked."""
    if value is None or isinstance(value, kind):
        return [value] * count
    if len(value) != count:
        raise ValueError(f"{len(value)} {what} for {count} images")
    return list(value)


def more_confident(own: Result, fallback: Result, below: float) -> Result:
    """The fallback model's reading where it is surer and the model's own is below ``below``, else its own."""
    return fallback if own.confidence < below and fallback.confidence > own.confidence else own


class Recognizer:
    """Recognise text in cropped single-line images.

    Images are sorted by width, grouped into width buckets (multiples of
    64 px), padded to their bucket's width by repeating the last column and
    run in batches; the reading of an image depends only on the image, never
    on what else was in the list.

    ``batch_columns`` caps a batch's total padded width (batch size x width;
    default ``batch_size * 256``, or less where the model's spec says so), so
    batches of wide lines hold fewer images than batches of short words.

    ``runtime`` runs the network: ``torch`` (our module), ``onnxruntime`` or
    ``openvino`` (the graph exported from it, up to the CTC head, which stays
    here), or ``auto`` (``crnn.runtime.resolve_runtime``: the fastest installed
    one for this CPU at fp32, whose texts are the same). ``min_width`` is the
    padding floor (None: the one the model's spec validated, ``read_min_width``,
    for its own weights; else its normalisation's).
    """

    def __init__(
        self,
        model: str | LoadedModel = DEFAULT_MODEL,
        device: str = "auto",
        precision: Precision = "auto",
        threads: int | None = None,
        batch_size: int = 32,
        batch_columns: int | None = None,
        weights: Path | None = None,
        contrast_retry: float | None = DEFAULT_CONTRAST_RETRY,
        polarity_retry: float | None = DEFAULT_POLARITY_RETRY,
        calibrated: bool = True,
        runtime: Runtime = "auto",
        min_width: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads is not None:
            if threads < 1:
                raise ValueError("threads must be at least 1")
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.model = model if isinstance(model, LoadedModel) else load_model(model, weights=weights)
        spec = MODEL_SPECS.get(self.model.name)
        validated_weights = bool(spec and spec.sha256 == self.model.sha256)
        validated = validated_weights and bool(spec and spec.bf16_validated)
        int8_ready = validated_weights and bool(spec and spec.int8_validated) and stats_path(self.model.name).is_file()
        self.precision = resolve_precision(precision, self.device, validated, int8_ready)
        self.batch_size = batch_size
        default_columns = batch_size * DEFAULT_COLUMNS_PER_IMAGE
        if spec is not None and spec.batch_columns:  # a model measured to read faster in smaller batches
            default_columns = min(default_columns, spec.batch_columns)
        self.batch_columns = max(batch_columns or default_columns, BUCKET_STEP)
        #: The padding floor for a page's lines (``PageReader`` puts it on each line it cuts): the spec's
        #: ``page_min_width`` for the registered weights at the default floor; None: the floor below.
        self.page_min_width = spec.page_min_width if min_width is None and validated_weights and spec else None
        if min_width is None:
            min_width = spec.read_min_width if validated_weights and spec and spec.read_min_width is not None \
                else self.model.normalization.min_width
        if min_width < 0:
            raise ValueError("min_width must be at least 0")
        #: How batches are laid out: the model's normalisation with this recogniser's padding floor.
        self.normalization = replace(self.model.normalization, min_width=min_width)
        self.contrast_retry = contrast_retry or None
        self.polarity_retry = polarity_retry or None
        network = self.model.network.eval().to(self.device)
        if self.precision == "int8":
            network = quantized_network(network, self._int8_stats(), self.input_height)
        self.network = network.to(memory_format=torch.channels_last)
        for p in self.network.parameters():
            p.requires_grad_(False)
        #: What runs the network, and its engine (None: the PyTorch module runs everything; else the graph up to
        #: the head runs on the engine).
        self.engine, self.runtime = engine_for(
            runtime, resolve_runtime(runtime, self.device, self.precision),
            partial(recognizer_graph, self.model.network, self.model.normalization.channels, self.input_height),
            self.precision, threads, self.model.name)
        self._head_buffers = threading.local()
        fallback = self.model.fallback
        self.fallback = None if fallback is None else Recognizer(
            fallback.model, device=str(self.device), precision=precision, batch_size=batch_size,
            batch_columns=batch_columns, contrast_retry=contrast_retry, polarity_retry=polarity_retry,
            runtime=runtime, threads=threads,
        )
        self.fallback_below = fallback.below if fallback else 0.0
        self.gate = fallback.gate if fallback else None
        if self.gate is not None and self.engine is None and not can_tap(self.network):
            raise ValueError(f"a model with a domain gate cannot run at {self.precision}; use fp32 or bf16")
        #: Raw score -> probability of an exact reading; only for a registered model with its own weights.
        self.calibration = shipped_calibration(self.model.name) if calibrated and validated_weights else None

    def _int8_stats(self) -> dict[str, torch.Tensor]:
        path = stats_path(self.model.name)
        if not path.is_file():
            raise ValueError(f"no int8 activation ranges for model {self.model.name!r} (only registered models ship "
                             "them; scripts/tools/fit_int8.py fits them); use bf16 or fp32")
        return load_stats(path, self.model.sha256)

    @property
    def charset(self):
        return self.model.charset

    @property
    def input_height(self) -> int:
        return self.model.input_height

    @property
    def input_channels(self) -> int:
        """1 when images are prepared grey, 3 when in colour (this model's or its fallback's)."""
        own = self.model.normalization.channels
        return max(own, self.fallback.input_channels if self.fallback is not None else 1)

    def warmup(self, widths: Sequence[int] = (BUCKET_STEP, 4 * BUCKET_STEP)) -> None:
        """Run blank batches once so one-off kernel selection and allocation happen now, not on a request."""
        for width in widths:
            shape = (self.input_height, width) + ((3,) if self.input_channels == 3 else ())
            blank = PreparedImage(np.full(shape, 255, np.uint8), width, self.input_height)
            self.forward([blank], width)
        if self.fallback is not None:
            self.fallback.warmup(widths)

    @property
    def prepare_height(self) -> int:
        """Height images are prepared at: this model's (taller when it crops rows, so the band it keeps is not
        upscaled), or its fallback's where that is taller (an adapted model may read at a smaller height than
        the pretrained one it falls back on; each reads at its own)."""
        own = framed_height(self.input_height, self.model.row_crop)
        return max(own, self.fallback.prepare_height if self.fallback is not None else 0)

    def prepare(self, image: ImageInput) -> PreparedImage:
        """Decode and resize one image for this model (raises ``InvalidImageError``)."""
        return prepare(image, self.prepare_height, channels=self.input_channels)

    def at_own_height(self, image: PreparedImage) -> PreparedImage:
        """``image`` as this model reads it: framed (``LoadedModel.row_crop``) and resized to its input height
        if prepared at another."""
        pixels = frame_rows(image.pixels, self.model.row_crop)
        if pixels.shape[0] == self.input_height:
            return image if pixels is image.pixels else replace(image, pixels=pixels)
        return replace(image, pixels=resize_to_height(pixels, self.input_height))

    def prepare_many(self, images: Sequence[ImageInput], ids: Sequence[str] | None = None) -> list[PreparedImage]:
        """Prepare every image; the first bad one raises ``InvalidImageError`` naming its index (and id)."""
        prepared = []
        for i, image in enumerate(images):
            try:
                prepared.append(self.prepare(image))
            except InvalidImageError as exc:
                label = f"image {i}" + (f" (id {ids[i]!r})" if ids and ids[i] else "")
                raise InvalidImageError(exc.reason, f"{label}: {exc}") from exc
        return prepared

    def recognize(
        self, images: Sequence[ImageInput], allowlist: str | None = None, constraint: Constraint | None = None
    ) -> list[Result]:
        """Read every image; raises ``InvalidImageError`` (naming the index) on the first bad one.

        Use :meth:`prepare` and :meth:`recognize_prepared` to handle bad
        images one by one instead.
        """
        return self.recognize_prepared(self.prepare_many(images), allowlist, constraint)

    def constraint(
        self, pattern: str | None = None, lexicon: Sequence[str] | None = None, ignore_case: bool = False,
        beam_width: int = 0,
    ) -> Constraint | None:
        """A pattern, lexicon or beam search for this model (None: greedy); raises ``InvalidConstraintError``.

        The last few constraints built are kept, so a server sees each pattern or lexicon compiled once.
        """
        return _cached_constraint(self.charset, pattern, tuple(lexicon) if lexicon else None, ignore_case, beam_width)

    def recognize_prepared(
        self,
        images: Sequence[PreparedImage],
        allowlist: str | None | Sequence[str | None] = None,
        constraint: Constraint | None | Sequence[Constraint | None] = None,
        min_confidence: float | None | Sequence[float | None] = None,
    ) -> list[Result]:
        """Read already prepared images (same order out as in).

        ``allowlist``, ``constraint`` and ``min_confidence`` are one for every
        image, or sequences with one per image (images with different ones
        still share batches). A reading whose (calibrated) confidence is below
        ``min_confidence`` comes back ``rejected``, with no text.
        """
        allowlists: Sequence[str | None] = _per_image(allowlist, str, len(images), "allowlists")
        constraints: Sequence[Constraint | None] = _per_image(constraint, Constraint, len(images), "constraints")
        minimums: Sequence[float | None] = _per_image(min_confidence, (float, int), len(images), "minimums")
        results = self._read(images, allowlists, constraints)
        if self.calibration is not None:
            results = [self._calibrate(r) for r in results]
        return [reject_below(r, m) for r, m in zip(results, minimums)]

    def _calibrate(self, result: Result) -> Result:
        assert self.calibration is not None
        greedy = result.unconstrained
        return replace(
            result, confidence=self.calibration(result.confidence), raw_confidence=result.confidence,
            unconstrained=None if greedy is None else replace(
                greedy, confidence=self.calibration(greedy.confidence), raw_confidence=greedy.confidence),
        )

    def _read(
        self, images: Sequence[PreparedImage], allowlists: Sequence[str | None],
        constraints: Sequence[Constraint | None],
    ) -> list[Result]:
        """Readings with their raw scores: retries and the fallback compare raw scores."""
        unique = {a: self.charset.allow_mask(a) for a in set(allowlists)}
        masks = [unique[a] for a in allowlists]
        domain: list[bool] | None = [] if self.gate is not None else None
        prepared, images = images, [self.at_own_height(im) for im in images]
        results = self._run(images, masks, constraints, domain)
        if self.contrast_retry:
            self._retry(images, masks, constraints, results, self.contrast_retry, stretch_contrast)
        if self.polarity_retry:
            self._retry(images, masks, constraints, results, self.polarity_retry, invert)
        if self.fallback is not None:
            if domain is not None:  # the gate routes: lines unlike the domain are the pretrained model's
                unsure = [i for i, inside in enumerate(domain) if not inside]
            else:
                unsure = [i for i, r in enumerate(results) if r.confidence < self.fallback_below]
            others = self.fallback._read(
                [prepared[i] for i in unsure], [allowlists[i] for i in unsure], [constraints[i] for i in unsure]
            )
            for i, other in zip(unsure, others):
                if self.gate is not None:  # outside: the pretrained reading unless ours is surer by the margin
                    results[i] = results[i] if self.gate.keeps_own(results[i], other) else other
                else:
                    results[i] = more_confident(results[i], other, self.fallback_below)
        return results

    def _retry(
        self, images: Sequence[PreparedImage], masks: Sequence[np.ndarray | None],
        constraints: Sequence[Constraint | None], results: list[Result], below: float,
        transform: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """Read the lines below ``below`` confidence again through ``transform``; keep the more confident reading."""
        retry = [i for i, r in enumerate(results) if r.confidence < below]
        changed = [replace(images[i], pixels=transform(images[i].pixels)) for i in retry]
        for i, other in zip(retry, self._run(changed, [masks[i] for i in retry], [constraints[i] for i in retry])):
            if other.confidence > results[i].confidence:
                results[i] = other

    @property
    def frame_scale(self) -> float:
        """Input columns per output frame over the 4 the decoder's character spans assume (``FRAME_STRIDE``):
        2 for PP-OCRv6 small, whose frames are 8 columns apart. The frames read stay those
        ``frames_covering`` counts at 4 columns, as measured (the rest see padding and read blank)."""
        return self.model.network.FRAME_STRIDE / FRAME_STRIDE

    def padded_width(self, width: int, floor: int | None = None) -> int:
        """The width a line ``width`` columns wide is run at: its bucket, and at least ``floor`` (None: this
        recogniser's padding floor)."""
        return padded_width(width, self.normalization, floor)

    def run_width(self, image: PreparedImage) -> int:
        """The width ``image`` is run at: :meth:`padded_width` with the image's own floor where it has one (a
        page's lines). Batches only ever hold images of one run width, so no reading depends on its companions."""
        return padded_width(image.width, self.normalization, image.min_width)

    def lines_per_batch(self, width: int) -> int:
        """The most lines one forward pass holds at padded ``width``: ``batch_size``, fewer for wide lines."""
        return max(1, min(self.batch_size, self.batch_columns // width))

    def batches(self, images: Sequence[PreparedImage]) -> Iterator[list[int]]:
        """Indices of ``images`` grouped into batches of one width bucket each, narrowest first."""
        order = sorted(range(len(images)), key=lambda i: (self.run_width(images[i]), images[i].width, i))
        batch: list[int] = []
        batch_bucket = 0
        for i in order:
            bucket = self.run_width(images[i])
            limit = self.lines_per_batch(bucket)
            if batch and (bucket != batch_bucket or len(batch) >= limit):
                yield batch
                batch = []
            batch.append(i)
            batch_bucket = bucket
        if batch:
            yield batch

    def _run(
        self, images: Sequence[PreparedImage], masks: Sequence[np.ndarray | None],
        constraints: Sequence[Constraint | None], domain: list[bool] | None = None,
    ) -> list[Result]:
        """Greedy or constrained readings; with ``domain`` (a list, and a gate), also fills it per image."""
        results: list[Result | None] = [None] * len(images)
        inside = [False] * len(images)
        for batch in self.batches(images):
            width = self.run_width(images[batch[0]])
            subset = self._class_subset([masks[i] for i in batch], [constraints[i] for i in batch], domain)
            charset = self.charset if subset is None else _subset_charset(self.charset, tuple(subset.tolist()))
            if subset is not None:
                logits = self.forward([images[i] for i in batch], width, subset)
            elif domain is None or self.gate is None:
                logits = self._batch_logits([images[i] for i in batch], width)
            else:
                logits, features = self.forward_features([images[i] for i in batch], width)
                for i, flag in zip(batch, self.gate.in_domain(features)):
                    inside[i] = bool(flag)
            by_mask: dict[int, list[int]] = {}
            for row, i in enumerate(batch):
                by_mask.setdefault(id(masks[i]), []).append(row)
            for rows in by_mask.values():
                mask = masks[batch[rows[0]]]
                if subset is not None:
                    mask = mask[subset]  # type: ignore[index]
                scores = logits[rows]
                if mask is not None or charset.fold_rounds:
                    scores = class_log_probs(scores, mask, charset.fold_rounds)
                path, path_p = best_path(scores)
                for k, row in enumerate(rows):
                    image = images[batch[row]]
                    frames = frames_covering(image.width, scores.shape[1])
                    constraint = constraints[batch[row]]
                    scale_x = image.scale_x * self.frame_scale  # character spans in the original's columns
                    if constraint is None:
                        results[batch[row]] = labelled_result(
                            path[k, :frames], path_p[k, :frames], partial(_blank_mean, scores[k, :frames]),
                            charset, scale_x, image.original_width,
                        )
                    else:
                        probs = scores[k, :frames].log_softmax(-1).exp().numpy()
                        results[batch[row]] = constraint.decode(probs, self.charset, scale_x, image.original_width)
        if domain is not None:
            domain[:] = inside
        return results  # type: ignore[return-value]

    def input_batches(self, images: Sequence[PreparedImage]) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The network inputs the recogniser would run for ``images``: (indices, ``(N, 1, H, W)`` tensor) per batch.

        For calibrating and checking other runtimes (int8 ranges, ONNX) on exactly the batches served here.
        """
        for rows in self.batches(images):
            yield rows, self.batch_tensor([images[i] for i in rows], self.run_width(images[rows[0]]))

    def batch_tensor(self, images: Sequence[PreparedImage], width: int) -> torch.Tensor:
        """Pad, normalise and stack images into an ``(N, 1, H, width)`` float tensor on the CPU."""
        return torch.from_numpy(stack_batch([im.pixels for im in images], width, self.normalization))

    def forward_features(self, images: Sequence[PreparedImage], width: int) -> tuple[torch.Tensor, np.ndarray]:
        """``forward``, plus each image's pooled convolutional features (``crnn.gate.pooled_features``)."""
        if self.engine is not None:
            logits, conv = self._engine_forward(images, width, None)
        else:
            with feature_tap(self.network) as captured:
                logits = self.forward(images, width)
            conv = captured[-1]
        lengths = [frames_covering(image.width, logits.shape[1]) for image in images]
        return logits, pooled_features(conv, lengths)

    def _class_subset(
        self, masks: Sequence[np.ndarray | None], constraints: Sequence[Constraint | None], domain: list[bool] | None
    ) -> np.ndarray | None:
        """The classes a batch can write when every image has an allowlist and the network can project onto
        fewer classes (PP-OCRv6 small): the union of the allowlists, blank first; None to compute them all
        (no allowlist, a pattern or lexicon compiled for the whole alphabet, case folding, a domain gate)."""
        if not self.subset_projection or any(m is None for m in masks) or any(c is not None for c in constraints):
            return None
        if domain is not None or self.charset.case_fold is not None:
            return None
        return np.flatnonzero(np.logical_or.reduce(masks))  # type: ignore[arg-type]

    @property
    def subset_projection(self) -> bool:
        """Whether this network computes logits for a subset of classes (``forward(images, classes)``)."""
        return isinstance(self.model.network, LCNetSVTR) and self.precision != "int8"

    @torch.inference_mode()
    def forward(self, images: Sequence[PreparedImage], width: int, classes: np.ndarray | None = None) -> torch.Tensor:
        """Run one batch of images padded to ``width``; returns float32 logits ``(N, T, C)`` on the CPU, or
        ``(N, T, len(classes))`` for only those classes."""
        if self.engine is not None:
            return self._engine_forward(images, width, classes)[0]
        batch = self.batch_tensor(images, width)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.precision)
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if classes is None:
                logits = self.network(batch)
            else:
                logits = self.network(batch, torch.as_tensor(classes, device=self.device))
        return logits.float().cpu()

    @torch.inference_mode()
    def _batch_logits(self, images: Sequence[PreparedImage], width: int) -> torch.Tensor:
        """``forward`` for every class, written into this thread's reused buffer where the head runs here: valid
        until this thread's next batch (``_run`` reads each batch's logits before it runs the next)."""
        if self.engine is None or not isinstance(self.model.network, LCNetSVTR):
            return self.forward(images, width)
        network = self.model.network
        needed = len(images) * network.sequence_length(width) * network.head.out_features
        buffer = getattr(self._head_buffers, "logits", None)
        if buffer is None or buffer.numel() < needed:
            buffer = self._head_buffers.logits = torch.empty(needed)
        return self._engine_forward(images, width, None, out=buffer)[0]

    @torch.inference_mode()
    def _engine_forward(
        self, images: Sequence[PreparedImage], width: int, classes: np.ndarray | None,
        out: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch on the engine, then the CTC head here: (logits as ``forward`` returns them, conv features);
        ``out``: a buffer for every class's logits (``LCNetSVTR.classify``)."""
        assert self.engine is not None
        frames, conv = self.engine(self.batch_tensor(images, width).numpy())
        subset = None if classes is None else torch.as_tensor(classes)
        head = self.model.network.classify
        logits = head(torch.from_numpy(frames), subset) if out is None else head(torch.from_numpy(frames), out=out)
        return logits.float(), torch.from_numpy(conv)
