"""How an adapted model's domain gate trades general-text leak for domain lines, by threshold and override margin.

    python scripts/studies/gate_thresholds.py --set plates --seed 0 --model /tmp/st/fr1/models/plates-0-default
    python scripts/studies/gate_thresholds.py --set receipts --seed 0 --model DIR --thresholds 0.5 --margins none,0,0.2

For a gated checkpoint written by ``scripts/studies/adapt_study.py`` (``--model``: its
folder), reads the unseen part of the study's (set, seed) split and the IIIT5K
test words (loose) once with the adapted network alone and once with the
pretrained fallback (raw confidences), takes the gate's domain probability of
every image, and prints, for each threshold and override margin, the share of
each set the adapted network would read and the accuracy of the routed
readings (IIIT5K drop against the pretrained model). A line the gate turns
away keeps the adapted reading when its confidence is higher by more than the
margin (``none``: never; ``crnn.gate.DomainGate.keeps_own``). docs/studies/adapt.md
chose the cut-row threshold ("A stricter gate for a network that cuts rows")
and the override margin ("Keeping a surer adapted reading") from these tables
on split 0.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from adapt_study import DATA, gate_features, make_split

from crnn import Recognizer
from crnn.weights import load_checkpoint
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import score

THRESHOLDS = "0.5,0.7,0.8,0.9,0.95,0.98,0.99"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="plates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, required=True, help="a study model folder (with model.pt)")
    parser.add_argument("--splits", type=Path, default=Path("/tmp/gate_thresholds"),
                        help="where the split's labelled folder is written")
    parser.add_argument("--thresholds", default=THRESHOLDS, help="comma-separated (0: the network alone)")
    parser.add_argument("--margins", default="none", help="comma-separated override margins (none: no override)")
    args = parser.parse_args()
    model = load_checkpoint(args.model / "model.pt")
    if model.fallback is None or model.fallback.gate is None:
        raise SystemExit(f"{args.model}: the installed model has no domain gate")
    gate = model.fallback.gate
    split = make_split(args.set, args.seed, args.splits)
    alone = Recognizer(dataclasses.replace(model, fallback=None), precision="fp32", calibrated=False)
    pretrained = Recognizer(model.fallback.model, precision="fp32", calibrated=False)  # raw, as routing compares
    general = [(s.image, s.label) for s in open_dataset(DATA / "iiit5k_test_even_scenes")]
    sets = {"IIIT5K": (general, None, "loose"), "unseen": (split.unseen, split.allow, split.metric)}
    measured = {}
    for name, (data, allow, metric) in sets.items():
        images, labels = [im for im, _ in data], [label for _, label in data]
        probability = gate.probability(gate_features(alone, images))
        own = alone.recognize(images, allow)
        other = pretrained.recognize(images, allow)
        measured[name] = probability, own, other, labels, metric
    zero_shot = score([r.text for r in measured["IIIT5K"][2]], measured["IIIT5K"][3]).loose
    print(f"{args.model.name}: gate threshold in the checkpoint {gate.threshold}, override margin "
          f"{gate.override_margin}; IIIT5K zero-shot {zero_shot:.3f}")
    print("| threshold | margin | IIIT5K kept | IIIT5K loose | IIIT5K drop | unseen kept | unseen accuracy |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    margins = [None if m.strip() == "none" else float(m) for m in args.margins.split(",")]
    for t, m in ((t, m) for t in map(float, args.thresholds.split(",")) for m in margins):
        cells = []
        keeps = dataclasses.replace(gate, override_margin=m).keeps_own
        for name in ("IIIT5K", "unseen"):
            probability, own, other, labels, metric = measured[name]
            inside = probability >= t
            s = score([a.text if k or keeps(a, b) else b.text
                       for a, b, k in zip(own, other, inside)], labels)
            accuracy = s.exact if metric == "exact" else s.loose
            cells.append((float(np.mean(inside)), accuracy))
        (g_kept, g_acc), (u_kept, u_acc) = cells
        print(f"| {t} | {m if m is not None else 'none'} | {100 * g_kept:.1f}% | {g_acc:.3f} "
              f"| {100 * (zero_shot - g_acc):.1f} | {100 * u_kept:.1f}% | {u_acc:.3f} |")


if __name__ == "__main__":
    main()
