"""Split a labelled set into two gt.tsv folders (absolute image paths), e.g. 80 for adapt and the rest for eval.

    python scripts/tools/split_set.py ../shared/data/openalpr_us_plates_part1 --first 80 --seed 0 --out /tmp/plates

writes /tmp/plates/adapt/gt.tsv (80 samples) and /tmp/plates/rest/gt.tsv (the others).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="a folder with gt.tsv")
    parser.add_argument("--first", type=int, default=80, help="samples in the first part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    root = args.dataset.resolve()
    rows = [line.split("\t", 1) for line in (root / "gt.tsv").read_text(encoding="utf-8").splitlines() if line]
    random.Random(args.seed).shuffle(rows)
    for part, chunk in (("adapt", rows[: args.first]), ("rest", rows[args.first :])):
        folder = args.out / part
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{root / name}\t{label}\n" for name, label in chunk)
        (folder / "gt.tsv").write_text(text, encoding="utf-8")
        print(f"{folder / 'gt.tsv'}: {len(chunk)} samples")


if __name__ == "__main__":
    main()
