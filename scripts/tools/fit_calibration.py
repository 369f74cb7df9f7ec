"""Fit the bundled model's confidence calibration on one shared set and check it on the others.

    python scripts/tools/fit_calibration.py [--model english_g2] [--fit iiit5k_train_even_scenes] [--write]

Reads every shared set with the default pipeline and raw scores, fits maps
(isotonic, Platt, beta) from raw score to "read exactly right" on the --fit set only,
and prints, for every set: accuracy, mean confidence and expected calibration
error (15 bins, exact match; and loose, for sets labelled in one case) before
and after, and the error rate of what is kept when the 10% least confident
lines are rejected. --write stores the --method table as crnn/calibrations/<model>.json;
the plots go to --plots (reliability diagram, risk-coverage curve).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from crnn import Recognizer
from crnn.calibration import TABLES, Calibration
from crnn.weights import write_atomically
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import ece_noise_floor, expected_calibration_error, loose, risk_coverage

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
#: Sets whose labels keep letter case as printed (exact match is meaningful).
CASE_SENSITIVE = ("iiit5k_train_even_scenes", "iiit5k_test_even_scenes", "svt_cs_train", "cute80_cs",
                  "uw3_lines_calamari_train", "mnist_t10k_first5000")
OTHERS = ("openalpr_us_plates_part1", "openalpr_endtoend_plate_crops_part1", "sroie_receipt_lines_part1")
METHODS = ("isotonic", "platt", "beta")


def read_set(recognizer: Recognizer, name: str) -> dict[str, np.ndarray]:
    data = list(open_dataset(DATA / name))
    allow = "0123456789" if name.startswith("mnist") else None
    results = recognizer.recognize([s.image for s in data], allow)
    return {
        "raw": np.array([r.confidence for r in results]),
        "exact": np.array([r.text == s.label for r, s in zip(results, data)]),
        "loose": np.array([loose(r.text) == loose(s.label) for r, s in zip(results, data)]),
    }


def cached_read(recognizer: Recognizer, name: str, cache: Path | None) -> dict[str, np.ndarray]:
    """``read_set``, or its arrays from ``cache`` when an earlier run stored them there."""
    path = cache / f"{name}.npz" if cache else None
    if path and path.is_file():
        with np.load(path) as stored:
            return {key: stored[key] for key in ("raw", "exact", "loose")}
    arrays = read_set(recognizer, name)
    if path:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_atomically(path, buffer.getvalue())  # an interrupted run leaves no half-written cache
    return arrays


def plot(sets: dict[str, dict], calibration: Calibration, names: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in names:
        d = sets[name]
        for conf, style, label in ((d["raw"], ":", "raw"), (d["calibrated"], "-", "calibrated")):
            which = np.minimum((conf * 15).astype(int), 14)
            xs = [conf[which == b].mean() for b in range(15) if (which == b).sum() >= 10]
            ys = [d["exact"][which == b].mean() for b in range(15) if (which == b).sum() >= 10]
            left.plot(xs, ys, style, marker="o", ms=3, label=f"{name} ({label})")
        order = np.argsort(-d["calibrated"], kind="stable")
        kept = np.arange(1, len(order) + 1)
        right.plot(kept / len(order), np.cumsum(~d["exact"][order]) / kept, label=name)
    left.plot([0, 1], [0, 1], color="grey", lw=0.8)
    left.set(xlabel="confidence", ylabel="share read exactly right", title="Reliability (bins with >= 10 lines)",
             xlim=(0, 1), ylim=(0, 1))
    left.legend(fontsize=6)
    right.set(xlabel="coverage (share of lines kept, most confident first)", ylabel="error rate of kept lines",
              title="Risk-coverage", xlim=(0, 1), ylim=(0, None))
    right.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="english_g2", help="registered model to fit for (default: english_g2)")
    parser.add_argument("--fit", default="iiit5k_train_even_scenes")
    parser.add_argument("--write", action="store_true", help="store the table in crnn/calibrations/")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "img" / "calibration.png")
    parser.add_argument("--method", choices=METHODS, default="beta",
                        help="the map plotted and written (beta: the shipped one)")
    parser.add_argument("--cache", type=Path,
                        help="keep each set's raw scores here and reuse them (NPZ per set; empty it after changing "
                             "the model or the reading pipeline)")
    parser.add_argument("--sets", default=",".join(CASE_SENSITIVE + OTHERS), help="comma-separated shared sets to read")
    args = parser.parse_args()
    recognizer = Recognizer(args.model, precision="fp32", calibrated=False)
    names = [name for name in args.sets.split(",") if (DATA / name).is_dir()]
    sets = {name: cached_read(recognizer, name, args.cache) for name in dict.fromkeys([args.fit, *names])}
    fit = sets[args.fit]
    for method in [m for m in METHODS if m != args.method] + [args.method]:  # the chosen one last: it is kept
        calibration = Calibration.fit(fit["raw"], fit["exact"], f"{args.fit}, {len(fit['raw'])} lines, exact match",
                                      method)
        print(f"\n{method}, fitted on {args.fit}: {len(calibration.raw)} knots")
        rows = table(sets, calibration, args.fit)
    print(json.dumps(rows))
    plot(sets, calibration, [n for n in ("iiit5k_test_even_scenes", "svt_cs_train", "cute80_cs") if n in sets],
         args.plots)
    print(f"plot: {args.plots}")
    if args.write:
        path = TABLES / f"{args.model}.json"
        write_atomically(path, calibration.to_json().encode())
        print(f"wrote {path}")


def table(sets: dict[str, dict], calibration: Calibration, fit: str) -> list[dict]:
    """Print (and return) the per-set calibration table."""
    print("| set | n | exact | mean raw | ECE raw | mean calibrated | ECE calibrated | ECE of a perfect calibration "
          "(noise floor: mean, 95th pct) | ECE loose raw -> calibrated | error of the kept at 90% coverage "
          "(calibrated threshold) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    rows = []
    for name, d in sets.items():
        d["calibrated"] = np.array([calibration(x) for x in d["raw"]])
        at90 = risk_coverage(d["calibrated"], d["exact"], (0.9,))[0]
        floor, floor95 = ece_noise_floor(d["calibrated"])
        row = {"set": name, "n": len(d["raw"]), "fit": name == fit, "exact": float(d["exact"].mean()),
               "mean_raw": float(d["raw"].mean()), "ece_raw": expected_calibration_error(d["raw"], d["exact"]),
               "mean_calibrated": float(d["calibrated"].mean()),
               "ece_calibrated": expected_calibration_error(d["calibrated"], d["exact"]),
               "ece_loose_raw": expected_calibration_error(d["raw"], d["loose"]),
               "ece_loose_calibrated": expected_calibration_error(d["calibrated"], d["loose"]),
               "error_at_90": at90["error"], "threshold_at_90": at90["threshold"],
               "ece_noise_floor": floor, "ece_noise_floor_95": floor95}
        rows.append(row)
        print(f"| {name}{' (fit)' if row['fit'] else ''} | {row['n']} | {row['exact']:.3f} | {row['mean_raw']:.3f} "
              f"| {row['ece_raw']:.3f} | {row['mean_calibrated']:.3f} | {row['ece_calibrated']:.3f} "
              f"| {floor:.3f}, {floor95:.3f} "
              f"| {row['ece_loose_raw']:.3f} -> {row['ece_loose_calibrated']:.3f} "
              f"| {row['error_at_90']:.3f} (threshold {row['threshold_at_90']:.3f}) |")
    return rows


if __name__ == "__main__":
    main()
