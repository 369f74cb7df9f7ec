"""``ocr adapt``: run the job (``ocr.adapt.job``) and print what it found."""

from __future__ import annotations

import sys

from ocr.adapt.job import run_adapt
from ocr.config import AdaptConfig

#: Exit status when the adapted model was not installed (not better than zero-shot, no --force).
NOT_INSTALLED = 3


def run_adapt_command(config: AdaptConfig) -> int:
    """Adapt, print the held-out and general-text figures and where the model went; 0, or ``NOT_INSTALLED``."""
    report = run_adapt(config, progress=sys.stderr.isatty())
    z, a = report["holdout"]["zero_shot"], report["holdout"]["adapted"]
    print(f"held-out n={report['holdout']['n']}: loose {z['loose']} -> {a['loose']}; CER {z['cer']} -> {a['cer']}")
    paired = report["holdout"]["paired"]
    print(f"paired: {paired['gains']} held-out images gained, {paired['losses']} lost, McNemar p = "
          f"{paired['p_value']:.3g} ({paired['verdict']})")
    g, sel = report["general"], report["selection"]
    print(f"general text n={g['n']}: loose {g['zero_shot']['loose']} -> {g['adapted']['loose']} "
          f"(estimated drop {100 * g['estimated_drop']:.1f} points; interpolation weight {sel['weight']}"
          + (f", lines unlike the labelled images read by {report['base']['model']})" if sel.get("fallback") else ")"))
    print(f"report: {config.out / 'report.md'}")
    if report["installed"]:
        print(f"model: {config.out / 'model.pt'} (use --model {config.out.name} with $OCR_MODELS or ./models, "
              f"or --model {config.out / 'model.pt'})")
        return 0
    print("not installed: the adapted model is not better than zero-shot on held-out images (see the report; "
          "--force installs it anyway)")
    return NOT_INSTALLED
