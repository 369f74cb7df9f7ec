"""The honest report: zero-shot vs adapted with bootstrap intervals, a learning curve, a preview grid."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from crnn.weights import write_atomically
from ocr.adapt.forgetting import PROBE_FLOOR, PROBE_RESOLUTION, gate_leak
from ocr.eval.metrics import Interval, loose

#: Two-sided significance level of the paired verdict.
SIGNIFICANCE = 0.05


def _override_text(gate: dict) -> str:
    margin = gate.get("override_margin")
    if margin is None:
        return ""
    return f", unless the adapted reading's confidence is higher by more than {margin} (raw scores)"


def _margin_text(selection: dict) -> str:
    best, margin = selection.get("best_held_out"), selection.get("net_lines_better_than_1")
    if best is None or best == 1.0:
        return ""
    return (f", {margin:+d} lines net better than weight 1.0 (a lower weight needs at least "
            f"+{selection.get('min_net_lines')})")


def compare_paired(zero_shot: list[str], adapted: list[str], labels: list[str], seed: int, rounds: int = 2000) -> dict:
    """Zero-shot vs adapted readings of the same images, image by image (loose correctness).

    Returns the images only one of them reads right, the difference in loose
    accuracy with a 95% paired-bootstrap interval, the exact McNemar p-value
    (two-sided binomial test on the images where they disagree) and a verdict:
    "better", "worse" or "inconclusive" at the 5% level.
    """
    from scipy.stats import binomtest

    z = np.array([loose(p) == loose(t) for p, t in zip(zero_shot, labels)], dtype=float)
    a = np.array([loose(p) == loose(t) for p, t in zip(adapted, labels)], dtype=float)
    gains, losses = int(((a == 1) & (z == 0)).sum()), int(((a == 0) & (z == 1)).sum())
    p_value = binomtest(gains, gains + losses, 0.5).pvalue if gains + losses else 1.0
    diff = a - z
    if len(diff):
        idx = np.random.default_rng(seed).integers(0, len(diff), (rounds, len(diff)))
        low, high = np.percentile(diff[idx].mean(1), [2.5, 97.5])
    else:
        low = high = 0.0
    verdict = "inconclusive" if p_value >= SIGNIFICANCE else ("better" if gains > losses else "worse")
    return {"n": len(labels), "gains": gains, "losses": losses,
            "difference": Interval(float(diff.mean()) if len(diff) else 0.0, float(low), float(high)),
            "p_value": float(p_value), "verdict": verdict}


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


def framing_words(row_crop: float) -> str:
    """How an adapted network frames its images, in words (``crnn.preprocess.frame_rows``)."""
    share = f"{100 * abs(row_crop):.0f}%"
    return (f"the top and bottom {share} of its rows cut" if row_crop > 0
            else f"{share} of its height in edge rows added above and below")


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


def verdict_sentence(r: dict) -> str:
    """The report's opening sentence: what the held-out images say, and how firmly."""
    n, paired = r["holdout"]["n"], r["holdout"]["paired"]
    evidence = (f"it reads {paired['gains']} images right that zero-shot misreads and misreads {paired['losses']} "
                f"that zero-shot reads right (loose {100 * paired['difference'].value:+.1f} points, 95% CI "
                f"[{100 * paired['difference'].low:+.1f}, {100 * paired['difference'].high:+.1f}]; "
                f"McNemar p = {paired['p_value']:.3g})")
    more = ("Cross-validation pooled every image already: label more images for firmer evidence."
            if r["holdout"].get("folds") else
            "Run with `--folds 4` to hold out every image once, or label more images, for firmer evidence.")
    if not r["better"]:
        return (f"**The adapted model is NOT better than zero-shot on the {n} held-out images**: {evidence}. "
                + ("It was installed anyway (--force)." if r["installed"] else "It was not installed."))
    if paired["verdict"] == "better":
        return f"**The adapted model is better than zero-shot on the {n} held-out images**: {evidence}."
    return (f"**The adapted model reads the {n} held-out images better than zero-shot, but {n} images are too few "
            f"to tell for sure**: {evidence}. It was installed. {more}")


def render_markdown(r: dict) -> str:
    z, a = r["holdout"]["zero_shot"], r["holdout"]["adapted"]
    g = r.get("general")
    verdict = verdict_sentence(r)
    lines = [
        f"# Adaptation report: {r['name']}",
        "",
        verdict,
        "",
        f"Data: {r['data']['train']} labelled images from `{r['data']['source']}`; {r['holdout']['n']} of them "
        "were held out of the selection fit (never trained on there) to choose the weight and judge the result. "
        f"Allowlist: `{r['options'].get('allow') or 'the whole alphabet'}`. "
        + (f"Letters are read case-insensitively and written {r['data']['case']}-case, as the labels are."
           if r["data"].get("case") else "Letter case is learnt from the labels."),
        f"Training: the installed model learnt from all {r['data']['train']} labelled images for "
        f"{r['training']['steps']} steps in {r['training']['seconds']:.0f} s (stopped: {r['training']['stopped']}; "
        + ("continuing from the selection fit's weights; " if r.get("recipe", {}).get("warm_start") else "")
        + f"the selection fit ran {', '.join(map(str, r['training']['selection_steps']))} steps); "
        f"whole run {r['wall_seconds']:.0f} s.",
        "",
        "| held-out | zero-shot | adapted |",
        "| --- | --- | --- |",
    ]
    for key in ("exact", "loose", "cer"):
        lines.append(f"| {key} (95% CI) | {z[key]} | {a[key]} |")
    sel = r["selection"]
    drops = ", ".join(f"{w}: {100 * d:+.1f}" for w, d in sel["estimated_drops"].items())
    by_weight, with_gate = r["holdout"]["by_weight"], r["holdout"].get("by_weight_with_gate", {})
    gate = sel.get("gate") or {}
    fallback = (
        f" With the gate: a logistic regression on the adapted network's own features, fitted on the labelled "
        f"images against rendered general text, sends lines it gives a domain probability under "
        f"{gate.get('threshold', 0.5)} to the pretrained {r['base']['model']}{_override_text(gate)} (it kept "
        f"{100 * gate.get('held_out_kept', 0):.0f}% of the held-out images and "
        f"{100 * gate.get('probe_kept', 0):.0f}% of the general-text probe with the adapted network)."
        if sel.get("fallback") else ""
    )
    lines += [
        "",
        f"Interpolation: the installed weights are {sel['weight']} x fine-tuned + {1 - sel['weight']:.1f} x "
        f"pretrained.{fallback} On the held-out images weight {sel.get('best_held_out', sel['candidate'])} read "
        f"best (lowest CER, then loose, then the higher weight){_margin_text(sel)}; the candidate was "
        f"{sel['candidate']}, and from there down, each weight alone and with the gate (the gate first where "
        "it read the held-out images as well) was "
        f"tried until the estimated general-text drop was within {100 * sel['max_forgetting']:.1f} points "
        f"(`--max-forgetting`); estimated drops, in points: {drops}."
        + ("" if sel["within_limit"] else " **Nothing tried met the limit; the last option tried was used.**"),
        "",
        "| weight | " + " | ".join(by_weight) + " |",
        "| --- |" + " --- |" * len(by_weight),
        "| held-out loose | " + " | ".join(f"{v['loose']:.3f}" for v in by_weight.values()) + " |",
        "| held-out CER | " + " | ".join(f"{v['cer']:.3f}" for v in by_weight.values()) + " |",
    ] + ([
        "",
        "| weight, with the gate | " + " | ".join(with_gate) + " |",
        "| --- |" + " --- |" * len(with_gate),
        "| held-out loose | " + " | ".join(f"{v['loose']:.3f}" for v in with_gate.values()) + " |",
        "| held-out CER | " + " | ".join(f"{v['cer']:.3f}" for v in with_gate.values()) + " |",
    ] if with_gate else []) + [
        "",
        "The held-out figures are the selection fit's readings at the installed weight; the weight was chosen "
        "on these same images, so they lean slightly optimistic.",
    ]
    h = r.get("height")
    if h and h["rows"] != h["pretrained"]:
        cer = h["labelled_cer"]
        lines += ["", f"Input height: the adapted network reads at {h['rows']} rows, the pretrained model at "
                  f"{h['pretrained']} "
                  + (f"(the pretrained model's CER on the labelled images: {cer[str(h['rows'])]:.3f} at "
                     f"{h['rows']} rows, {cer[str(h['pretrained'])]:.3f} at {h['pretrained']}; a line at the "
                     "smaller height costs about half as much to train on)." if cer else "(`--height`).")]
    framing = r.get("framing")
    if framing and framing["row_crop"]:
        fc, crop = framing["labelled_loose_cer"], framing["row_crop"]
        lines += ["", f"Framing: the adapted network reads each image with {framing_words(crop)}"
                  + (f" (the pretrained model's loose CER on the labelled images: {fc[str(crop)]:.3f}, against "
                     f"{fc['0.0']:.3f} unframed); its fallback, the pretrained model, reads them whole." if fc
                     else " (`--row-crop`); its fallback, the pretrained model, reads them whole.")]
    st = r.get("self_training")
    if st:
        reader = {"selection": "the selection fit",
                  "both": "the final fit's first half (which had trained on the selection fit's "
                          f"{st.get('kept_by_selection', 0)} pseudo-labels)"}.get(st.get("read_by"),
                                                                                  "the labelled half of the final fit")
        lines += ["", f"Self-training: {st['kept']} of {st['read']} unlabelled images from `{st['source']}` read "
                  f"with confidence >= {st['min_confidence']} by {reader} were added as pseudo-labels for the "
                  "installed model's fit (the held-out figures above come from the selection fit, without them)."
                  + (f" Each one, with its confidence, is in `{st['file']}`." if st.get("file") else "")]
    folds = r["holdout"].get("folds")
    if folds:
        lines += [
            "",
            f"Cross-validated: each image was held out once, by one of {len(folds)} fold models trained on the "
            "other folds; the figures above pool those readings. The installed model was then trained on all "
            "images, so it has no held-out images of its own: the figures estimate the procedure.",
            "",
            "| fold | train | held out | zero-shot loose | fine-tuned loose (weight 1) | steps |",
            "| --- | --- | --- | --- | --- | --- |",
        ] + [
            f"| {f['fold']} | {f['train']} | {f['n']} | {f['zero_shot_loose']:.3f} | {f['adapted_loose']:.3f} "
            f"| {f['steps']} |"
            for f in folds
        ]
    if g:
        lines += [
            "",
            f"Forgetting on general text ({g['source']}, n = {g['n']}): loose accuracy "
            f"{g['zero_shot']['loose']} before, {g['adapted']['loose']} after; "
            + (f"measured drop {100 * g['estimated_drop']:.1f} points."
               if g.get("measured") else
               f"estimated drop on real words {100 * g['estimated_drop']:.1f} points (a 95% upper bound on the "
               "share of these images the pretrained model read right and this one misreads, less the probe's "
               f"{100 * PROBE_FLOOR:.1f}-point floor, and never below {100 * PROBE_RESOLUTION:.1f} points, the "
               "smallest drop this probe can vouch for"
               + (f"; with the gate, at least {100 * gate_leak(gate.get('threshold', 0.5)):.0f}% of the network's "
                  "own estimate, as real "
                  "words get past a gate fitted on rendered ones more often"
                  + (", and leaving out the adapted readings the gate's margin keeps for lines it turns away"
                     if gate.get("override_margin") is not None else "")
                  if r["selection"].get("fallback") else "")
               + "; docs/studies/adapt.md compares the estimate with real words)."),
        ]
    lines += ["", "![learning curve](learning_curve.png)", ""]
    if r["data"].get("case"):
        lines += ["Step 0 of the curve is the pretrained network read the adapted model's way (letters "
                  "case-folded), so it can differ from the zero-shot line, which reads as the pretrained model "
                  "is shipped.", ""]
    return "\n".join(lines)
