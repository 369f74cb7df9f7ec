"""Loading a user's labelled images for adaptation: checks, label normalisation, split, LMDB cache."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from crnn.charset import Charset
from crnn.errors import InvalidImageError
from crnn.preprocess import to_gray
from ocr.data.datasets import DatasetError, is_labelled, open_dataset
from ocr.data.lmdb_io import read_lmdb, write_lmdb

#: Abort when more than this share of the images cannot be read.
MAX_BAD_SHARE = 0.10
#: Unlabelled images used for self-training at most.
MAX_UNLABELLED = 2000
NORMALIZATIONS = ("upper", "lower", "drop-unknown")


@dataclass(frozen=True)
class LabelledImage:
    """A decoded grey image (original size) and its label."""

    name: str
    gray: np.ndarray
    label: str


def normalize_label(label: str, steps: tuple[str, ...], charset: Charset) -> str:
    """Apply the requested label normalisations in order."""
    for step in steps:
        if step == "upper":
            label = label.upper()
        elif step == "lower":
            label = label.lower()
        elif step == "drop-unknown":
            label = "".join(ch for ch in label if not charset.unknown_chars(ch))
    return label


def label_case(labels: list[str], alphabet: str) -> str | None:
    """"upper" or "lower" when every letter of the labels is in that case and the alphabet has both cases.

    Such labels (receipts transcribed in capitals) say nothing about the case
    printed, so the model should read letters case-insensitively and write
    them in the labels' case rather than learn to turn "Total" into TOTAL.
    """
    letters = {ch for label in labels for ch in label if ch.upper() != ch.lower()}
    for case, convert in (("upper", str.upper), ("lower", str.lower)):
        if letters and all(convert(ch) == ch for ch in letters) and any(
            ch.swapcase() in alphabet for ch in letters
        ):
            return case
    return None


def load_labelled(
    path: Path, charset: Charset, normalize: tuple[str, ...] = (), warn=None, drafts: bool = False
) -> list[LabelledImage]:
    """Read and check a labelled folder; raises ``DatasetError`` for fatal problems.

    In an ``ocr label`` folder the confirmed and corrected labels are used (``drafts``: unreviewed readings too).

    Unreadable images are skipped with one warning listing them, unless more
    than 10% are bad. Labels with characters the model cannot write are an
    error listing each character and line, unless ``normalize`` fixes them.
    """
    warn = warn or (lambda message: print(message, file=sys.stderr))
    dataset = open_dataset(path, drafts=drafts)
    samples, bad = [], []
    unknown: dict[str, list[str]] = defaultdict(list)
    for sample in dataset:
        try:
            gray = to_gray(sample.image)
        except InvalidImageError as exc:
            bad.append(f"{sample.name} ({exc})")
            continue
        label = normalize_label(sample.label, normalize, charset)
        for ch in charset.unknown_chars(label):
            unknown[ch].append(sample.name)
        if not label:
            bad.append(f"{sample.name} (empty label)")
            continue
        samples.append(LabelledImage(sample.name, gray, label))
    total = len(samples) + len(bad)
    if bad:
        if len(bad) > MAX_BAD_SHARE * total:
            raise DatasetError(f"{len(bad)} of {total} samples are unusable (over 10%):\n  " + "\n  ".join(bad))
        warn(f"warning: skipping {len(bad)} unusable samples:\n  " + "\n  ".join(bad))
    if unknown:
        lines = [f"  {ch!r} (U+{ord(ch):04X}) in {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")
                 for ch, names in unknown.items()]
        raise DatasetError(
            "labels use characters the model cannot write:\n" + "\n".join(lines)
            + "\nfix the labels or pass --normalize upper, lower and/or drop-unknown"
        )
    if len(samples) < 4:
        raise DatasetError(f"{path}: only {len(samples)} usable samples; adaptation needs at least 4")
    return samples


def load_unlabelled(path: Path, warn=None) -> list[LabelledImage]:
    """Images of a folder (recursively) or of a labelled set (labels ignored), for self-training.

    Unreadable images are skipped with one warning; none readable is an error.
    At most ``MAX_UNLABELLED`` images are used (the first, in sorted order).
    """
    from ocr.data.inputs import expand_inputs

    warn = warn or (lambda message: print(message, file=sys.stderr))
    if is_labelled(path):
        sources = ((s.name, s.image) for s in open_dataset(path, drafts=True))
    elif path.is_dir():
        sources = ((str(p.relative_to(path)), p.read_bytes()) for p in expand_inputs((path,)))
    else:
        raise DatasetError(f"--unlabeled: {path} is not a folder of images or a labelled set")
    images, bad = [], []
    for name, image in sources:
        if len(images) == MAX_UNLABELLED:
            warn(f"warning: --unlabeled: using the first {MAX_UNLABELLED} images of {path}")
            break
        try:
            images.append(LabelledImage(name, to_gray(image), ""))
        except InvalidImageError as exc:
            bad.append(f"{name} ({exc})")
    if bad:
        warn(f"warning: --unlabeled: skipping {len(bad)} unreadable images:\n  " + "\n  ".join(bad[:20]))
    if not images:
        raise DatasetError(f"--unlabeled: no readable images in {path}")
    return images


def _length_ordered(samples: list[LabelledImage], rng: random.Random) -> list[int]:
    """Indices sorted by label length, shuffled within each length."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_length[len(s.label)].append(i)
    ordered = []
    for length in sorted(by_length):
        group = by_length[length]
        rng.shuffle(group)
        ordered.extend(group)
    return ordered


def split_folds(samples: list[LabelledImage], k: int, seed: int) -> list[list[int]]:
    """``k`` disjoint held-out folds covering every sample once, each stratified by label length."""
    if not 2 <= k <= len(samples):
        raise ValueError(f"--folds must be between 2 and the number of images ({len(samples)}), got {k}")
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = rng.randrange(k)
    for position, i in enumerate(_length_ordered(samples, rng)):
        folds[(position + offset) % k].append(i)
    return [sorted(fold) for fold in folds]


def split_holdout(samples: list[LabelledImage], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held-out), stratified by label length so both see similar lengths."""
    if not 0 < share < 1:
        raise ValueError("--holdout must be between 0 and 1")
    rng = random.Random(seed)
    ordered = _length_ordered(samples, rng)
    # Every k-th of the length-sorted list goes to held-out: proportional in every length band.
    n_hold = max(1, round(share * len(samples)))
    step = len(ordered) / n_hold
    offset = rng.random() * step
    held = sorted({ordered[min(len(ordered) - 1, int(offset + k * step))] for k in range(n_hold)})
    train = [i for i in range(len(samples)) if i not in set(held)]
    return train, held


def encode_png(gray: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", gray)
    if not ok:
        raise ValueError("cannot encode image")
    return buffer.tobytes()


def data_hash(samples: list[LabelledImage]) -> str:
    """SHA-256 over the decoded pixels and labels, in order (the training-data fingerprint)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.label}|{s.gray.shape}|".encode())
        digest.update(np.ascontiguousarray(s.gray).tobytes())
    return digest.hexdigest()


def split_key(fingerprint: str, seed: int, holdout: float | str) -> str:
    """Cache folder name for one data set split one way (the split depends on seed and share)."""
    return hashlib.sha256(f"{fingerprint}|{seed}|{holdout!r}".encode()).hexdigest()[:16]


def store_split(folder: Path, train: list[LabelledImage], held: list[LabelledImage]) -> None:
    """Write ``train/`` and ``holdout/`` LMDBs under ``folder`` atomically (temp folder + rename).

    An interrupted run leaves at most a stray temp folder, never a cache that
    looks complete but is not.
    """
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_cache(tmp / "train", train)
    write_cache(tmp / "holdout", held)
    try:
        os.replace(tmp, folder)
    except OSError:  # another run stored the same split first
        shutil.rmtree(tmp, ignore_errors=True)


def write_cache(path: Path, samples: list[LabelledImage]) -> None:
    """Store samples in the standard LMDB layout (PNG bytes + labels)."""
    write_lmdb(path, ((encode_png(s.gray), s.label) for s in samples), map_size=1 << 32)


def read_cache(path: Path) -> list[LabelledImage]:
    return [LabelledImage(key, to_gray(image), label) for key, image, label in read_lmdb(path)]
