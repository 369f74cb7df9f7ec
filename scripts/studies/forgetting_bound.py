"""How often `ocr adapt`'s forgetting estimate understates the real drop, over study runs (adapt_study rows).

    python scripts/studies/forgetting_bound.py docs/studies/rows/adapt_study*.jsonl

Rows written before the estimate became an upper bound (no ``base`` field: english_g2, point estimates) are
turned into the bound the job now reports: the probe's share of lost lines (the point estimate plus
``PROBE_FLOOR``) plus ``UPPER_Z`` binomial standard errors on the 300-line probe, less the floor. Rows with a
``base`` carry the bound already. Then the rendered probe's resolution floor (``PROBE_RESOLUTION``: no
estimate below it) is applied. Prints, per base, how many runs' real IIIT5K drop exceeds the estimate, over
every run and over the runs that installed a gated pair (with the rendered probe, the only option the job now
tries), and for the old rows the same count for other multiples of the standard error.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from ocr.adapt.forgetting import PROBE_FLOOR, PROBE_RESOLUTION, UPPER_Z, upper_drop

PROBE_LINES = 300


def bound_from_point(estimate: float, z: float = UPPER_Z) -> float:
    """The upper bound for a run whose job reported the point ``estimate`` on the rendered probe."""
    lost = round((estimate + PROBE_FLOOR) * PROBE_LINES) if estimate > 0 else 0
    return max(0.0, upper_drop(lost, 0, PROBE_LINES, z) - PROBE_FLOOR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="runs.jsonl files of scripts/studies/adapt_study.py")
    args = parser.parse_args()
    rows = [json.loads(line) for path in args.runs for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "real_drop" in r and "estimated_drop" in r]
    by_base = defaultdict(list)
    for r in rows:
        by_base[r.get("base", "english_g2 (point estimates)")].append(r)
    print("| base | runs | point estimate understates | upper bound understates | bound and floor understate |")
    print("| --- | --- | --- | --- | --- |")
    for base, all_rows in sorted(by_base.items()):
        gated = [r for r in all_rows if r.get("fallback")]
        for which, rs in (("every run", all_rows), ("gated pair installed", gated)):
            if not rs:
                continue
            bounds = [r["estimated_drop"] if "base" in r else bound_from_point(r["estimated_drop"]) for r in rs]
            bound = sum(r["real_drop"] > e for r, e in zip(rs, bounds))
            floored = sum(r["real_drop"] > max(e, PROBE_RESOLUTION) for r, e in zip(rs, bounds))
            point = "" if "base" in rs[0] else _share(sum(r["real_drop"] > r["estimated_drop"] for r in rs), len(rs))
            print(f"| {base}, {which} | {len(rs)} | {point} | {_share(bound, len(rs))} | {_share(floored, len(rs))} |")
            if "base" not in rs[0] and which == "every run":
                for z in (1.0, 1.28, 2.0):
                    count = sum(r["real_drop"] > bound_from_point(r["estimated_drop"], z) for r in rs)
                    print(f"|   z = {z} | | | {_share(count, len(rs))} | |")


def _share(count: int, total: int) -> str:
    return f"{count} ({count / total:.0%})"

if __name__ == "__main__":
    main()
