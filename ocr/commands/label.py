"""``ocr label``: draft labels for a folder from the model's readings, then (``--review``) the review page."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

from ocr.config import LabelConfig
from ocr.data.datasets import hand_label_file
from ocr.label.drafts import DraftReport, draft_crops, draft_pages, run_drafts
from ocr.label.store import LabelStore, review_order, summarize

#: Unreadable images listed by name at most (the rest are counted).
LIST_UNREADABLE = 20


def run_label(config: LabelConfig, progress: bool = False, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """Read what is pending into drafts, report, then print rows, write gt.tsv or serve the review as asked."""
    out, err = out or sys.stdout, err or sys.stderr
    if config.decode.min_confidence is not None:
        raise ValueError("--min-confidence does not apply to ocr label: every reading becomes a draft, and the "
                         "review shows the least sure first")
    if config.again and config.detect.detect:
        raise ValueError("--again reads cropped lines again; with --detect, label the pages into a new folder")
    model_name = config.model.model

    def read(todo) -> DraftReport:
        """Load the model only when something is pending (it is freed on return: the review needs none)."""
        if not todo:
            return DraftReport(0, 0, [])
        recognizer = config.model.load()
        constraint = config.decode.build(recognizer)
        if config.detect.detect:
            reader = config.detect.page_reader(recognizer, config.model)
            return draft_pages(LabelStore(config.folder), reader, model_name, todo, config.allow, constraint, progress)
        return draft_crops(LabelStore(config.folder), recognizer, model_name, todo, config.allow, constraint,
                           progress)

    report, pending = run_drafts(config.folder, read, config.detect.detect, config.again)
    store = LabelStore(config.folder)
    if not report.interrupted:
        store.compact()
    rows = store.rows()
    summary = summarize(rows.values())
    unit = "pages" if config.detect.detect else "images"
    print(f"ocr label: {config.folder}: read {pending} new {unit}" + (f" ({report.skipped_reviewed} already "
          "reviewed, kept)" if report.skipped_reviewed else "") + f"; {summary.total} rows: {summary.draft} draft, "
          f"{summary.confirmed} confirmed, {summary.corrected} corrected, {summary.skipped} skipped, "
          f"{summary.unreadable} unreadable; expected errors among the drafts: {summary.expected_errors_left:.1f}",
          file=err)
    if store.bad_lines:
        print(f"warning: {store.bad_lines} damaged lines of {store.path} were skipped (an interrupted write?)",
              file=err)
    if report.unreadable:
        listed = "\n  ".join(f"{name}: {reason}" for name, reason in report.unreadable[:LIST_UNREADABLE])
        more = len(report.unreadable) - LIST_UNREADABLE
        print(f"unreadable ({len(report.unreadable)}):\n  {listed}" + (f"\n  ... and {more} more" if more > 0 else ""),
              file=err)
    hand = hand_label_file(config.folder)
    if hand is not None:
        print(f"note: {hand} is yours, not `ocr label`'s: it is kept, and `ocr adapt {config.folder}` will ask you to "
              f"name which labels to train on", file=err)
    if report.interrupted:
        print(f"ocr label: interrupted; {report.read} readings saved: run the same command again to go on", file=err)
        return 130
    if config.json:
        for row in review_order(rows.values()):
            record = {"image": str(config.folder / row.image), "text": row.text, "confidence": row.confidence,
                      "status": row.status}
            print(json.dumps(record, ensure_ascii=False), file=out)
        for row in rows.values():
            if row.status == "unreadable":
                print(json.dumps({"image": str(config.folder / row.image), "error": row.error, "status": row.status},
                                 ensure_ascii=False), file=out)
    if config.write_gt:
        path, count = store.write_gt(force=config.force)
        print(f"wrote {path}: {count} confirmed and corrected labels", file=err)
    if config.review:
        from ocr.label.review import serve_review

        try:
            asyncio.run(serve_review(config.folder, config.host, config.port,
                                     announce=lambda message: print(message, file=err, flush=True)))
        except KeyboardInterrupt:
            print("ocr label: review stopped; every decision was saved", file=err)
    elif summary.draft:
        print(f"review them, least sure first: ocr label {config.folder} --review", file=err)
    return 0
