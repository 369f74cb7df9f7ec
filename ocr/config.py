"""Typed configuration for each command, built once from the parsed arguments."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from crnn import Recognizer
from crnn.constrained import Constraint
from crnn.errors import InvalidConstraintError
from crnn.runtime import Precision
from crnn.specs import ADAPT_BASE_MODEL, DEFAULT_MODEL
from textdet import DetectionConfig, Detector, PageReader
from textdet.specs import DEFAULT_DETECTOR, DETECTOR_SPECS

#: Largest lexicon file read (bytes).
MAX_LEXICON_BYTES = 16 << 20


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how to run it."""

    model: str = DEFAULT_MODEL
    weights: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    threads: int | None = None
    batch_size: int = 32
    #: Lines below this confidence are also read inverted (0: never; None: the recogniser's default).
    polarity_retry: float | None = None

    def load(self) -> Recognizer:
        """The recogniser these options describe (weights checked on load)."""
        extra = {} if self.polarity_retry is None else {"polarity_retry": self.polarity_retry}
        return Recognizer(
            self.model, device=self.device, precision=self.precision,  # type: ignore[arg-type]
            runtime=self.runtime, threads=self.threads, batch_size=self.batch_size,  # type: ignore[arg-type]
            weights=self.weights, **extra,
        )


@dataclass(frozen=True)
class DecodeOptions:
    """How a line is decoded: greedy (the default), or constrained to a pattern or lexicon, or beam search."""

    pattern: str | None = None
    lexicon: Path | None = None
    ignore_case: bool = False
    beam: int = 0
    #: Readings whose confidence is below this come back rejected, without text (None: keep all).
    min_confidence: float | None = None

    def build(self, recognizer: Recognizer) -> Constraint | None:
        """The constraint for ``recognizer`` (None: greedy); the lexicon file holds one word per line."""
        words = None
        if self.lexicon is not None:
            if self.lexicon.stat().st_size > MAX_LEXICON_BYTES:
                raise InvalidConstraintError(f"lexicon {self.lexicon} is larger than {MAX_LEXICON_BYTES >> 20} MiB")
            words = self.lexicon.read_text(encoding="utf-8").splitlines()
        return recognizer.constraint(self.pattern, words, self.ignore_case, self.beam)


@dataclass(frozen=True)
class DetectOptions:
    """Whether images are whole pages to find lines in first, with which detector, and how large it sees them
    (None: the detector's own default)."""

    detect: bool = False
    detector: str = DEFAULT_DETECTOR
    max_pixels: int | None = None
    max_side: int | None = None

    def detection_config(self) -> DetectionConfig:
        """The detector's own defaults with this page size limit."""
        config = DETECTOR_SPECS[self.detector].config
        return replace(config, max_pixels=self.max_pixels or config.max_pixels,
                       max_side=self.max_side or config.max_side)

    def page_reader(self, recognizer: Recognizer, model: ModelOptions) -> PageReader:
        """A page reader around ``recognizer``, with the detector on the same device (weights checked on load).

        The detector runs at ``model.precision`` (int8, the recogniser's only, means ``auto`` for it) on
        ``model.runtime`` with ``model.threads``.
        """
        detector_precision = cast(Precision, "auto" if model.precision == "int8" else model.precision)
        detector = Detector(self.detector, device=str(recognizer.device), precision=detector_precision,
                            config=self.detection_config(), runtime=model.runtime,  # type: ignore[arg-type]
                            threads=model.threads)
        return PageReader(recognizer, detector)


@dataclass(frozen=True)
class ReadConfig:
    inputs: tuple[Path, ...]
    allow: str | None
    json: bool
    model: ModelOptions
    decode: DecodeOptions = DecodeOptions()
    detect: DetectOptions = DetectOptions()
    #: With detect: draw the lines over the image into this file (one input) or folder (several).
    draw: Path | None = None


@dataclass(frozen=True)
class EvalConfig:
    dataset: Path
    allow: str | None
    limit: int | None
    json: bool
    out: Path | None
    model: ModelOptions
    decode: DecodeOptions = DecodeOptions()
    detect: DetectOptions = DetectOptions()


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
    decode: DecodeOptions = DecodeOptions()
    detect: DetectOptions = DetectOptions()


@dataclass(frozen=True)
class LabelConfig:
    """``ocr label``: the folder, how to read it, and what to do after (print, write gt.tsv, serve the review)."""

    folder: Path
    allow: str | None
    json: bool
    model: ModelOptions
    decode: DecodeOptions = DecodeOptions()
    detect: DetectOptions = DetectOptions()
    #: Read drafts and unreadable images again (never reviewed ones).
    again: bool = False
    write_gt: bool = False
    force: bool = False
    review: bool = False
    host: str = "127.0.0.1"
    port: int = 8765


#: Which fit reads the ``--unlabeled`` images (``AdaptConfig.pseudo_from``).
PSEUDO_FROM = ("selection", "final", "both")


#: ``ocr adapt``'s peak learning rate by base model. english_g2's was chosen on plates split 0 among 1e-4, 2e-4
#: and 4e-4; PP-OCRv6 small's on plates and receipts split 0: at 2e-4 it read other shops' receipt lines at
#: 0.851 loose (zero-shot 0.929), at 5e-5 at 0.910, and plates alike (0.893, 0.900); docs/studies/adapt.md.
BASE_LR = {"english_g2": 2e-4, "ppocrv6_small": 5e-5}
#: For a base not in ``BASE_LR`` (an adapted checkpoint adapted again).
DEFAULT_LR = 5e-5


@dataclass(frozen=True)
class AdaptConfig:
    """``ocr adapt``'s options: the data, the limits and the outputs (the recipe's own switches, which users do not
    set, are ``ocr.adapt.recipe.Recipe``)."""

    data: Path
    out: Path
    base_model: str = ADAPT_BASE_MODEL
    holdout: float = 0.25
    #: K-fold cross-validation instead of one held-out share (None: use ``holdout``).
    folds: int | None = None
    seed: int = 0
    max_minutes: float = 3.0
    max_steps: int = 1000
    fonts: tuple[Path, ...] = ()
    synthetic_ratio: float = 0.0
    allow: str | None = None
    device: str = "auto"
    normalize: tuple[str, ...] = ()
    general: Path | None = None
    preview: bool = False
    force: bool = False
    batch_size: int = 16
    #: Peak learning rate (None: the base's, ``BASE_LR``).
    lr: float | None = None
    #: "auto" (fold case when every label letter is one case), "keep", "upper" or "lower".
    case: str = "auto"
    #: Largest estimated drop of general-text loose accuracy allowed (1: domain accuracy only).
    max_forgetting: float = 0.03
    #: Unlabelled domain images for one round of self-training (None: labelled images only).
    unlabeled: Path | None = None
    #: Confidence a reading of an unlabelled image needs to become a pseudo-label.
    pseudo_confidence: float = 0.9
    #: Which fit reads the unlabelled images (``PSEUDO_FROM``): "selection" (one final fit trains on labels and
    #: pseudo-labels), "final" (the final fit's first half reads them, its second half adds them) or "both" (the
    #: selection fit's pseudo-labels join the first half, whose weights read them again for the second half).
    #: Chosen on split 0 (docs/studies/adapt.md).
    pseudo_from: str = "selection"
    #: Input height the adapted network trains and reads at (None: chosen from the labelled images, see
    #: ``ocr.adapt.height``); its fallback, the pretrained model, keeps its own.
    height: int | None = None
    #: Share of each image's height the adapted network cuts from its top and bottom before reading (negative:
    #: rows of edge pixels added; None: chosen from the labelled images, see ``ocr.adapt.height``).
    row_crop: float | None = None
    #: In an ``ocr label`` folder, train on unreviewed draft readings too (default: confirmed and corrected only).
    include_drafts: bool = False

    @property
    def peak_lr(self) -> float:
        """``lr``, or the base model's (``BASE_LR``)."""
        return self.lr if self.lr is not None else BASE_LR.get(self.base_model, DEFAULT_LR)
