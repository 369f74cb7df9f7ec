"""Is a lower precision, a narrower padding floor or another runtime safe for a model? Every shared set read with
the reference and with each variant, paired line by line.

    python scripts/bench/precision_check.py [--model ppocrv6_small] [--variants precision=bf16 min_width=128 ...]
                                            [--data ../shared/data] [--out rows.jsonl]

A variant is ``key=value[,key=value]`` over ``precision``, ``min_width`` and ``runtime`` (``Recognizer``'s
arguments); the reference is fp32 on PyTorch at the model's trained padding floor (``normalization.min_width``).
Per set: loose accuracy of each, the lines only the reference reads right and the lines only the variant reads right
(loose), and McNemar's exact one-sided p-value that the variant is worse. The rule a default must pass on **every**
set (``ModelSpec.bf16_validated``, ``read_min_width``): not worse by the paired test (p < 0.05) and within 1 point
loose. Each set's lines are split by index into two halves, so a default is chosen on one ("choose", even indices)
and reported on the other ("report", odd): a table per half, plus one over all lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest

from crnn import MODEL_SPECS, Recognizer
from ocr.data.datasets import DatasetError, open_dataset
from ocr.eval.lines import evaluate
from ocr.eval.metrics import loose

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"precision": str, "min_width": int, "runtime": str}
HALVES = {"choose (even lines)": slice(0, None, 2), "report (odd lines)": slice(1, None, 2), "all": slice(None)}


def parse_variant(text: str) -> dict[str, str | int]:
    """``"precision=bf16,min_width=128"`` -> ``{"precision": "bf16", "min_width": 128}``."""
    variant: dict[str, str | int] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in KEYS or not value:
            raise SystemExit(f"bad variant {text!r}: use key=value over {', '.join(KEYS)}")
        variant[key] = KEYS[key](value)
    return variant


def paired(reference: list[bool], other: list[bool]) -> tuple[int, int, float, float]:
    """(lines only the reference reads right, lines only the other does, one-sided p that the other is worse,
    the other's loss in loose accuracy)."""
    only_ref = sum(a and not b for a, b in zip(reference, other))
    only_other = sum(b and not a for a, b in zip(reference, other))
    discordant = only_ref + only_other
    p = binomtest(only_ref, discordant, 0.5, alternative="greater").pvalue if discordant else 1.0
    return only_ref, only_other, p, (sum(reference) - sum(other)) / max(1, len(reference))


def read_sets(args: argparse.Namespace, variants: dict[str, dict]) -> dict[str, dict[str, list[bool]]]:
    """Per set, per recogniser ("reference" and each variant): whether each line reads right (loose)."""
    trained_floor = MODEL_SPECS[args.model].normalization.min_width if args.model in MODEL_SPECS else None
    reference = Recognizer(args.model, device="cpu", precision="fp32", runtime="torch", min_width=trained_floor)
    recognizers = {"reference": reference} | {
        name: Recognizer(args.model, device="cpu", **{"precision": "fp32"} | v) for name, v in variants.items()}  # type: ignore[arg-type]
    print(f"{args.model}: reference fp32, torch, floor {reference.normalization.min_width}", flush=True)
    results: dict[str, dict[str, list[bool]]] = {}
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir() and (not args.sets or p.name in args.sets)):
        try:
            dataset = open_dataset(folder)
        except DatasetError:
            continue
        allow = "0123456789" if dataset.kind == "mnist-idx" else None
        right = {}
        for name, recognizer in recognizers.items():
            predictions = evaluate(recognizer, dataset, allow, progress=False).predictions
            right[name] = [loose(p.text) == loose(p.label) for p in predictions]
        results[folder.name] = right
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps({"model": args.model, "set": folder.name,  # "1": read right, "0": not
                                    "right": {k: "".join("01"[b] for b in v) for k, v in right.items()}}) + "\n")
        print(f"read {folder.name}", flush=True)
    return results


def print_tables(results: dict[str, dict[str, list[bool]]], variants: list[str]) -> None:
    """One markdown table per half: each set's reference and variants, paired; then the verdict over every set."""
    print("loose accuracy; 'ref only' / 'var only' = lines only that one reads right")
    for half, rows in HALVES.items():
        passes = dict.fromkeys(variants, True)
        print(f"\n### {half}\n")
        print("| set | n | reference | " + " | ".join(f"{v} | ref only | var only | p (worse) | passes"
                                                     for v in variants) + " |")
        print("|" + " --- |" * (3 + 5 * len(variants)))
        for name, right in results.items():
            ref = right["reference"][rows]
            cells = [f"{sum(ref) / len(ref):.3f}"]
            for variant in variants:
                other = right[variant][rows]
                only_ref, only_other, p, drop = paired(ref, other)
                ok = p >= 0.05 and drop <= 0.01
                passes[variant] &= ok
                cells += [f"{sum(other) / len(other):.3f}", str(only_ref), str(only_other), f"{p:.3f}",
                          "yes" if ok else "NO"]
            print(f"| {name} | {len(ref)} | " + " | ".join(cells) + " |")
        cells = ["**every set**", "", ""] + [
            c for v in variants for c in ("", "", "", "", f"**{'yes' if passes[v] else 'NO'}**")]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ppocrv6_small")
    parser.add_argument("--variants", nargs="+", default=["precision=bf16"])
    parser.add_argument("--precisions", nargs="+", default=None, help="shorthand: one variant per precision")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sets", nargs="+", default=None, help="only these set folders (default: every one)")
    parser.add_argument("--out", type=Path, default=None, help="append each set's per-line rights as JSON lines")
    parser.add_argument("--from-rows", type=Path, nargs="+", default=None,
                        help="print the tables from rows an earlier run wrote with --out (reads nothing)")
    args = parser.parse_args()
    if args.from_rows:
        results: dict[str, dict[str, list[bool]]] = {}
        for path in args.from_rows:
            for line in path.read_text().splitlines():
                row = json.loads(line)
                results.setdefault(row["set"], {}).update(
                    {k: [c in (True, "1") for c in v] for k, v in row["right"].items()})
        variants = [v for v in next(iter(results.values())) if v != "reference"]
        print_tables(results, [v for v in variants if all(v in r for r in results.values())])
        return
    names = [f"precision={p}" for p in args.precisions] if args.precisions else args.variants
    variants = {name: parse_variant(name) for name in names}
    print_tables(read_sets(args, variants), list(variants))


if __name__ == "__main__":
    main()
