"""The honest report: zero-shot vs adapted with bootstrap intervals, a learning curve, a preview grid."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from crnn.weights import write_atomically
from ocr.metrics import Interval


def is_better(adapted: dict[str, Interval], zero_shot: dict[str, Interval]) -> bool:
    """Adapted wins if its loose accuracy is higher, or equal with a lower CER."""
    a, z = adapted["loose"].value, zero_shot["loose"].value
    return a > z or (a == z and adapted["cer"].value < zero_shot["cer"].value)


def plot_curve(path: Path, curve, zero_shot_loose: float) -> None:
    """Training loss and held-out loose accuracy against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p.step for p in curve]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(steps[1:], [p.loss for p in curve[1:]], color="tab:red", marker="o", label="training CTC loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("CTC loss", color="tab:red")
    ax2 = ax1.twinx()
    ax2.plot(steps, [p.holdout_loose for p in curve], color="tab:blue", marker="s", label="held-out loose acc.")
    ax2.axhline(zero_shot_loose, color="tab:blue", linestyle="--", linewidth=1, label="zero-shot")
    ax2.set_ylabel("held-out loose accuracy", color="tab:blue")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())


def preview_grid(path: Path, rows: list[tuple[str, list[np.ndarray]]], height: int = 40) -> None:
    """A PNG with one labelled row of images per (title, images)."""
    import cv2

    lines = []
    for title, images in rows:
        scaled = [cv2.resize(im, (max(1, round(im.shape[1] * height / im.shape[0])), height)) for im in images]
        strip = np.full((height + 18, 10), 255, np.uint8)
        parts = [strip]
        for im in scaled:
            block = np.full((height + 18, im.shape[1] + 8), 255, np.uint8)
            block[18:, 4 : 4 + im.shape[1]] = im
            parts.append(block)
        row = np.concatenate(parts, axis=1)
        cv2.putText(row, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1)
        lines.append(row)
    width = max(r.shape[1] for r in lines)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=255) for r in lines])
    ok, data = cv2.imencode(".png", grid)
    write_atomically(path, data.tobytes())


def plain(value):
    """``value`` as plain JSON types (intervals become dicts)."""
    return json.loads(json.dumps(value, default=_jsonable, allow_nan=False))


def write_report(out: Path, report: dict) -> None:
    """report.json and report.md, atomically."""
    write_atomically(out / "report.json", json.dumps(plain(report), indent=2).encode())
    write_atomically(out / "report.md", render_markdown(report).encode())


def _jsonable(value):
    if isinstance(value, Interval):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def render_markdown(r: dict) -> str:
    z, a = r["holdout"]["zero_shot"], r["holdout"]["adapted"]
    g = r.get("general")
    verdict = (
        f"**The adapted model is better than zero-shot on the {r['holdout']['n']} held-out images.**"
        if r["better"]
        else f"**The adapted model is NOT better than zero-shot on the {r['holdout']['n']} held-out images.** "
        + ("It was installed anyway (--force)." if r["installed"] else "It was not installed.")
    )
    lines = [
        f"# Adaptation report: {r['name']}",
        "",
        verdict,
        "",
        f"Data: {r['data']['train']} training images, {r['holdout']['n']} held-out (never trained on), "
        f"from `{r['data']['source']}`. Allowlist: `{r['options'].get('allow') or 'the whole alphabet'}`. "
        + (f"Letters are read case-insensitively and written {r['data']['case']}-case, as the labels are."
           if r["data"].get("case") else "Letter case is learnt from the labels."),
        f"Training: {r['training']['steps']} steps in {r['training']['seconds']:.0f} s "
        f"(best at step {r['training']['best_step']}; stopped: {r['training']['stopped']}); "
        f"whole run {r['wall_seconds']:.0f} s.",
        "",
        "| held-out | zero-shot | adapted |",
        "| --- | --- | --- |",
    ]
    for key in ("exact", "loose", "cer"):
        lines.append(f"| {key} (95% CI) | {z[key]} | {a[key]} |")
    folds = r["holdout"].get("folds")
    if folds:
        lines += [
            "",
            f"Cross-validated: each image was held out once, by one of {len(folds)} fold models trained on the "
            "other folds; the figures above pool those readings. The installed model was then trained on all "
            f"images for {r['training']['steps']} steps (the folds' median best step), so it has no held-out "
            "images of its own: the figures estimate the procedure.",
            "",
            "| fold | train | held out | zero-shot loose | adapted loose | best step |",
            "| --- | --- | --- | --- | --- | --- |",
        ] + [
            f"| {f['fold']} | {f['train']} | {f['n']} | {f['zero_shot_loose']:.3f} | {f['adapted_loose']:.3f} "
            f"| {f['best_step']} |"
            for f in folds
        ]
    if g:
        lines += [
            "",
            f"Forgetting check on general text ({g['source']}, n = {g['n']}): loose accuracy "
            f"{g['zero_shot']['loose']} before, {g['adapted']['loose']} after "
            f"({100 * (g['adapted']['loose'].value - g['zero_shot']['loose'].value):+.1f} points).",
        ]
    lines += ["", "![learning curve](learning_curve.png)", ""]
    if r["data"].get("case"):
        lines += ["Step 0 of the curve is the pretrained network read the adapted model's way (letters "
                  "case-folded), so it can differ from the zero-shot line, which reads as the pretrained model "
                  "is shipped.", ""]
    return "\n".join(lines)
