"""Real IIIT5K drop against the forgetting probe, at every interpolation weight of adapted models.

    python scripts/studies/probe_calibration.py /tmp/adapt_study/models/plates-0-default

For each model folder written by ``ocr adapt`` (its report.json gives the
installed interpolation weight w, so the fine-tuned network is recovered as
pretrained + (installed - pretrained) / w), every weight in 1.0 ... 0.4 is
read on IIIT5K test words (the real drop, loose, fp32) and on the rendered
forgetting probe as ``ocr adapt`` reads it (loss rate, gain rate, net change
and the estimate). One JSON line per (model, weight) on stdout. ``ocr.adapt.forgetting.PROBE_FLOOR`` is the
intercept of a least-squares line of real drop on loss rate over one plates
model's lines (split seed 0).
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
from pathlib import Path

from crnn import Recognizer
from crnn.weights import load_checkpoint, load_model
from ocr.adapt.forgetting import ForgettingProbe
from ocr.adapt.train import interpolate
from ocr.data.datasets import open_dataset
from ocr.eval.metrics import loose, score

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="ocr adapt output folders (model.pt + report.json)")
    parser.add_argument("--general", type=Path, default=ROOT.parent / "shared" / "data" / "iiit5k_test_even_scenes")
    args = parser.parse_args()
    words = [(s.image, s.label) for s in open_dataset(args.general)]
    labels = [label for _, label in words]
    base = load_model("english_g2")
    zero = score([r.text for r in Recognizer(base, precision="fp32").recognize([im for im, _ in words])], labels).loose
    pretrained = base.network.state_dict()
    for folder in args.models:
        model = load_checkpoint(folder / "model.pt")
        installed_weight = json.loads((folder / "report.json").read_text())["selection"]["weight"]
        installed = model.network.state_dict()
        tuned = {k: pretrained[k] + (v - pretrained[k]) / installed_weight if v.is_floating_point() else v
                 for k, v in installed.items()}
        probe = ForgettingProbe.build(base, model.charset, None)
        for w in WEIGHTS:
            network = copy.deepcopy(base.network)
            network.load_state_dict(interpolate(pretrained, tuned, w))
            reader = Recognizer(replace(model, network=copy.deepcopy(network)), precision="fp32", runtime="torch")
            real = zero - score([r.text for r in reader.recognize([im for im, _ in words])], labels).loose
            right_before = [loose(z) == loose(t) for z, t in zip(probe.zero_shot, probe.labels)]
            readings = [r.text for r in probe.read(network)]
            right_after = [loose(p) == loose(t) for p, t in zip(readings, probe.labels)]
            n = len(right_before)
            lost = sum(b and not a for b, a in zip(right_before, right_after)) / n
            gained = sum(a and not b for b, a in zip(right_before, right_after)) / n
            print(json.dumps({"model": folder.name, "weight": w, "real_drop": round(real, 4),
                              "probe_loss_rate": round(lost, 4), "probe_gain_rate": round(gained, 4),
                              "probe_net": round(lost - gained, 4), "estimate": round(probe.estimate(readings), 4)}),
                  flush=True)


if __name__ == "__main__":
    main()
