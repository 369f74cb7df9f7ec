"""What ``ocr label``'s review order buys, and whether labels reviewed through it train ``ocr adapt`` like gt.tsv.

Part ``order`` (shared US plates and receipt lines): ``ocr label`` on a folder of the set's images (linked, no
labels), then, in its review order (least sure first), the share of wrong readings a person meets after reviewing
the first 10 / 25 / 50 %, and the errors left among the rest: expected (the sum of 1 - confidence) against real
(exact, and loose: case and punctuation ignored).

Part ``detect`` (shared whole receipts): ``ocr label --detect`` cuts out and drafts every line; a scripted review
copies the true transcript of the annotated line each crop overlaps (IoU >= 0.5; crops over no annotated line are
skipped). Then ``ocr adapt`` runs twice with the same seed on the same 80 reviewed lines: from the label folder's
review state, and from a folder with the same crops and a gt.tsv. Prints both held-out results.

    python scripts/studies/label_study.py order
    python scripts/studies/label_study.py detect --out /tmp/label_detect [--steps 25 --minutes 15]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ocr.cli import main as ocr_main  # noqa: E402
from ocr.data.datasets import open_dataset  # noqa: E402
from ocr.data.page_sets import open_page_set  # noqa: E402
from ocr.eval.metrics import loose  # noqa: E402
from ocr.eval.page_metrics import match_boxes  # noqa: E402
from ocr.label.store import LabelStore, review_order  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
ORDER_SETS = ("openalpr_us_plates_part1", "sroie_receipt_lines_part1")


def linked_folder(source: Path, target: Path) -> dict[str, str]:
    """Link a labelled set's images into ``target`` (no labels); returns label by relative image name."""
    labels = {}
    for location in open_dataset(source).locations():
        rel = Path(location.path).relative_to(source)
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).symlink_to(location.path)
        labels[rel.as_posix()] = location.label
    return labels


def order_part(work: Path) -> None:
    print("| set | lines | wrong (exact / loose) | loose errors found after 10% / 25% / 50% | expected errors left "
          "after 10 / 25 / 50% | real left, exact | real left, loose |")
    print("| --- | ---: | ---: | --- | --- | --- | --- |")
    for name in ORDER_SETS:
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        labels = linked_folder(SHARED / name, folder)
        assert ocr_main(["label", str(folder)]) == 0
        rows = [row for row in review_order(LabelStore(folder).rows().values()) if row.status == "draft"]
        wrong_exact = [row.text != labels[row.image] for row in rows]
        wrong_loose = [loose(row.text) != loose(labels[row.image]) for row in rows]
        n, total_loose = len(rows), sum(wrong_loose)
        found, expected, left_exact, left_loose = [], [], [], []
        for share in (0.10, 0.25, 0.50):
            k = round(share * n)
            found.append(f"{100 * sum(wrong_loose[:k]) / max(1, total_loose):.0f}%")
            expected.append(f"{sum(row.unsure for row in rows[k:]):.1f}")
            left_exact.append(str(sum(wrong_exact[k:])))
            left_loose.append(str(sum(wrong_loose[k:])))
        print(f"| {name} | {n} | {sum(wrong_exact)} / {total_loose} | {' / '.join(found)} | {' / '.join(expected)} "
              f"| {' / '.join(left_exact)} | {' / '.join(left_loose)} |")


def detect_part(work: Path, lines: int, seed: int, minutes: float, steps: int | None) -> None:
    source = SHARED / "sroie_receipts_full_part1"
    folder = work / "receipts"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pages = {page.image_path.name: page for page in open_page_set(source)}
    for name, page in pages.items():
        (folder / name).symlink_to(page.image_path)
    assert ocr_main(["label", str(folder), "--detect"]) == 0
    store = LabelStore(folder)
    rows = store.rows()
    by_page: dict[str, list] = {}
    for row in rows.values():
        if row.status == "draft":
            by_page.setdefault(row.page, []).append(row)
    matched = changed = 0
    for page_name, page_rows in by_page.items():
        truth = [line for line in pages[page_name].lines if not line.dont_care]
        pairs = match_boxes([np.array(r.box, np.float32) for r in page_rows], [t.box for t in truth])
        paired = dict(pairs)
        for i, row in enumerate(page_rows):
            if i in paired:
                label = truth[paired[i]].text
                changed += label != row.reading
                matched += 1
                store.set_label(row.image, "confirmed", label)
            else:
                store.set_label(row.image, "skipped")
    crops = len([r for r in rows.values() if r.status == "draft"])
    print(f"ocr label --detect: {len(pages)} receipts -> {crops} line crops under {folder / 'lines'}; scripted "
          f"review: {matched} matched an annotated line ({changed} needed a correction), {crops - matched} skipped")
    example = next(r for r in store.rows().values() if r.status in ("confirmed", "corrected"))
    print("provenance of one row:", json.dumps({k: example.to_json()[k] for k in ("image", "page", "box", "reading",
                                                                                   "text", "status")}))
    labelled = sorted(r.image for r in store.rows().values() if r.status in ("confirmed", "corrected"))
    chosen = set(random.Random(seed).sample(labelled, lines))
    for image in labelled:
        if image not in chosen:
            store.set_label(image, "skipped")
    gt_folder = work / "receipts_gt"
    shutil.rmtree(gt_folder, ignore_errors=True)
    (gt_folder / "lines").mkdir(parents=True)
    final = store.rows()
    for image in sorted(chosen):
        shutil.copyfile(folder / image, gt_folder / image)
    (gt_folder / "gt.tsv").write_text("".join(f"{image}\t{final[image].text}\n" for image in sorted(chosen)))
    results = {}
    for name, data in (("review state", folder), ("gt.tsv", gt_folder)):
        out = work / f"adapted_{name.replace(' ', '_').replace('.', '_')}"
        shutil.rmtree(out, ignore_errors=True)
        ocr_main(["adapt", str(data), "--out", str(out), "--seed", str(seed), "--max-minutes", str(minutes)]
                 + (["--max-steps", str(steps)] if steps else []))
        report = json.loads((out / "report.json").read_text())
        results[name] = report
    print("| labels from | train / held-out | training data SHA-256 | steps | weight | held-out loose zero-shot -> "
          "adapted | general loose | installed |")
    print("| --- | --- | --- | ---: | ---: | --- | --- | --- |")
    for name, report in results.items():
        hold, general = report["holdout"], report["general"]
        data = report["data"]
        print(f"| {name} | {data['train']} / {data['held_out']} | {data['sha256'][:12]} | "
              f"{report['training']['steps']} | {report['selection'].get('weight')} | "
              f"{hold['zero_shot']['loose']['value']:.3f} -> {hold['adapted']['loose']['value']:.3f} | "
              f"{general['zero_shot']['loose']['value']:.3f} -> {general['adapted']['loose']['value']:.3f} | "
              f"{report['installed']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("order", "detect"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/label_study"))
    parser.add_argument("--lines", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--steps", type=int, help="a fixed number of training steps (with a --minutes budget that "
                        "does not bind, both runs do the same work, whatever the machine's load)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part == "order":
        order_part(args.out)
    else:
        detect_part(args.out, args.lines, args.seed, args.minutes, args.steps)


if __name__ == "__main__":
    main()
