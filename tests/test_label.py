"""``ocr label``: the review state's journal, drafts from a folder, resume and interruption, bad input, and the
labels ``ocr adapt`` and ``ocr eval`` take from a reviewed folder."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from crnn import Recognizer
from ocr.adapt.data import load_labelled
from ocr.cli import main
from ocr.commands.read import run_read
from ocr.config import DetectOptions, LabelConfig, ModelOptions, ReadConfig
from ocr.data.datasets import DatasetError, open_dataset
from ocr.label import drafts
from ocr.label.drafts import draft_crops, draft_pages
from ocr.label.store import STATE_FILE, LabelRow, LabelStateError, LabelStore, review_order, summarize
from tests.conftest import EXAMPLES, encode
from tests.pages import render_page

MODEL = ModelOptions(model="english_g2", device="cpu", precision="fp32", runtime="torch")


def _folder(tmp_path: Path, copies: int = 1) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for copy in range(copies):
        for image in sorted((EXAMPLES / "images").glob("*.png")):
            (folder / f"{copy}_{image.name}").write_bytes(image.read_bytes())
    return folder


def _draft(image: str, text: str, confidence: float) -> LabelRow:
    return LabelRow(image, text, "draft", reading=text, confidence=confidence)


def test_journal_keeps_reviewed_labels_and_decides_confirmed_or_corrected(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.put_drafts([_draft("a.png", "HELLO", 0.9), _draft("b.png", "W0RLD", 0.4), _draft("c.png", "X", 0.99)])
    assert store.set_label("a.png", "confirmed", "HELLO").status == "confirmed"
    assert store.set_label("b.png", "confirmed", "WORLD").status == "corrected"  # differs from the reading
    assert store.set_label("c.png", "skipped").status == "skipped"
    # A later pass of the model never replaces what a person decided; drafts it may.
    written = store.put_drafts([_draft("a.png", "HELL0", 0.2), _draft("b.png", "W0RLD", 0.1),
                                _draft("d.png", "NEW", 0.5)])
    rows = store.rows()
    assert written == 1
    assert (rows["a.png"].text, rows["b.png"].text, rows["d.png"].status) == ("HELLO", "WORLD", "draft")
    undone = store.set_label("b.png", "draft")  # undo: back to the model's reading
    assert (undone.status, undone.text) == ("draft", "W0RLD")
    with pytest.raises(LabelStateError, match="status"):
        store.set_label("a.png", "unreadable")
    with pytest.raises(LabelStateError, match="no readable image"):
        store.set_label("zzz.png", "confirmed", "Z")
    order = [row.image for row in review_order(store.rows().values())]
    assert order == ["b.png", "d.png", "c.png", "a.png"]  # drafts least sure first, then skipped, then reviewed
    summary = summarize(store.rows().values())
    assert (summary.draft, summary.confirmed, summary.skipped) == (2, 1, 1)
    assert summary.expected_errors_left == pytest.approx((1 - 0.4) + (1 - 0.5))
    lines = store.path.read_text().count("\n")
    store.compact()
    assert store.path.read_text().count("\n") < lines and store.rows() == rows | {"b.png": store.rows()["b.png"]}


def test_torn_last_line_is_skipped_and_kept_apart_from_the_next_change(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.put_drafts([_draft("a.png", "A", 0.5), _draft("b.png", "B", 0.5)])
    with open(store.path, "ab") as handle:
        handle.write(b'{"image": "a.png", "text": "torn", "sta')  # a write cut off by a crash
    assert store.rows()["a.png"].text == "A" and store.bad_lines == 1
    store.set_label("b.png", "confirmed", "B2")
    rows = store.rows()
    assert rows["b.png"].text == "B2" and rows["a.png"].text == "A" and store.bad_lines == 1


def _decide_many(folder: str, images: list[str]) -> None:
    store = LabelStore(Path(folder))
    for image in images:
        store.set_label(image, "confirmed", image.upper())


def test_two_writers_on_one_folder_lose_nothing(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    names = [f"{i:03d}.png" for i in range(80)]
    store.put_drafts([_draft(name, "x", 0.5) for name in names])
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_decide_many, args=(str(tmp_path), names[i::2])) for i in range(2)]
    for worker in workers:
        worker.start()
    store.compact()  # a third process compacting meanwhile
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    rows = store.rows()
    assert store.bad_lines == 0
    assert all(rows[name].status == "corrected" and rows[name].text == name.upper() for name in names)


def test_label_json_matches_ocr_read_and_lists_unreadable_and_huge_images(tmp_path: Path,
                                                                          recognizer: Recognizer) -> None:
    folder = _folder(tmp_path)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "huge.png").write_bytes(encode(np.full((8000, 7000), 255, np.uint8)))  # 56 M pixels
    (folder / "notes.txt").write_text("not an image")
    out, err = io.StringIO(), io.StringIO()
    code = _run(LabelConfig(folder, None, True, MODEL), out, err)
    assert code == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    errors = {Path(r["image"]).name for r in rows if r.get("status") == "unreadable"}
    assert errors == {"corrupt.png", "huge.png"}
    assert "unreadable (2)" in err.getvalue()
    readings = [r for r in rows if r["status"] == "draft"]
    assert [r["confidence"] for r in readings] == sorted(r["confidence"] for r in readings)  # least sure first
    read_out = io.StringIO()
    paths = tuple(sorted(p for p in folder.glob("[0-9]*.png")))
    run_read(ReadConfig(paths, None, True, MODEL), recognizer, read_out, io.StringIO())
    expected = {r["image"]: (r["text"], r["confidence"]) for r in map(json.loads, read_out.getvalue().splitlines())}
    assert {r["image"]: (r["text"], r["confidence"]) for r in readings} == expected


def _run(config: LabelConfig, out: io.StringIO | None = None, err: io.StringIO | None = None) -> int:
    from ocr.commands.label import run_label

    return run_label(config, out=out or io.StringIO(), err=err or io.StringIO())


def test_interrupted_label_keeps_saved_chunks_and_resumes(tmp_path: Path, recognizer: Recognizer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _folder(tmp_path, copies=2)  # 16 images
    monkeypatch.setattr(drafts, "CHUNK", 4)
    store = LabelStore(folder)
    calls = {"n": 0}
    real = recognizer.recognize_prepared

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(recognizer, "recognize_prepared", interrupted)
    images = drafts.folder_images(folder, detect=False)
    report = draft_crops(store, recognizer, "english_g2", images, None, None)
    assert report.interrupted and report.read == 8 and len(store.rows()) == 8
    store.set_label(sorted(store.rows())[0], "confirmed", "MINE")
    monkeypatch.setattr(recognizer, "recognize_prepared", real)
    todo = drafts.pending(store, images, detect=False, again=False)
    assert len(todo) == 8 and not set(todo) & set(store.rows())
    draft_crops(store, recognizer, "english_g2", todo, None, None)
    again = drafts.pending(store, images, detect=False, again=True)
    assert len(again) == 15  # every draft, never the confirmed one
    draft_crops(store, recognizer, "english_g2", again, None, None)
    rows = store.rows()
    assert len(rows) == 16 and rows[sorted(rows)[0]].text == "MINE"


def test_cli_label_refuses_to_mix_pages_and_crops_and_reports_missing_folder(tmp_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    assert main(["label", str(tmp_path / "nope"), "--model", "english_g2"]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["label", str(tmp_path / "empty"), "--model", "english_g2"]) == 2
    assert "no images found" in capsys.readouterr().err and not (tmp_path / "empty" / STATE_FILE).exists()
    assert main(["label", str(folder), "--model", "english_g2", "--min-confidence", "0.5"]) == 2
    assert "--min-confidence" in capsys.readouterr().err
    LabelStore(folder).set_meta("mode", detect=True)
    assert main(["label", str(folder), "--model", "english_g2"]) == 2
    assert "labelled as pages" in capsys.readouterr().err


def test_write_gt_never_replaces_a_hand_written_one(tmp_path: Path) -> None:
    store = LabelStore(tmp_path)
    store.put_drafts([_draft("a.png", "A", 0.5), _draft("b.png", "B", 0.5)])
    store.set_label("a.png", "confirmed", "A")
    hand = "a.png\tHAND\nb.png\tWRITTEN\n"
    (tmp_path / "gt.tsv").write_text(hand)
    with pytest.raises(LabelStateError, match="not replacing"):
        store.write_gt()
    assert (tmp_path / "gt.tsv").read_text() == hand
    (tmp_path / "gt.tsv").unlink()
    store.set_label("a.png", "skipped")
    with pytest.raises(LabelStateError, match="no confirmed or corrected"):
        store.write_gt()
    store.set_label("a.png", "confirmed", "A")
    path, count = store.write_gt()
    assert count == 1 and path.read_text() == "a.png\tA\n"
    store.set_label("b.png", "confirmed", "B")
    assert store.write_gt()[1] == 2  # its own file it may rewrite
    (tmp_path / "gt.tsv").write_text("a.png\tEDITED\n")
    with pytest.raises(LabelStateError):
        store.write_gt()


def test_datasets_take_reviewed_labels_and_refuse_an_ambiguous_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    names = sorted(p.name for p in folder.glob("*.png"))
    store = LabelStore(folder)
    store.put_drafts([_draft(name, "DRAFT", 0.5) for name in names])
    with pytest.raises(DatasetError, match="no confirmed or corrected"):
        open_dataset(folder)
    for name in names[:5]:
        store.set_label(name, "confirmed", f"L{name[2]}")
    store.set_label(names[5], "skipped")
    assert {s.name: s.label for s in open_dataset(folder)} == {n: f"L{n[2]}" for n in names[:5]}
    assert len(open_dataset(folder, drafts=True)) == 7  # the skipped one stays out
    store.write_gt()
    assert len(open_dataset(folder)) == 5  # its own gt.tsv is not a second opinion
    (folder / "gt.tsv").write_text("".join(f"{n}\tHAND\n" for n in names))
    with pytest.raises(DatasetError, match="name the labels to use"):
        open_dataset(folder)
    assert {s.label for s in open_dataset(folder / "gt.tsv")} == {"HAND"}
    assert len(open_dataset(folder / STATE_FILE)) == 5
    from crnn.weights import load_model

    charset = load_model("english_g2").charset
    assert len(load_labelled(folder / STATE_FILE, charset)) == 5
    assert len(load_labelled(folder / STATE_FILE, charset, drafts=True)) == 7


def test_detect_saves_each_line_with_its_page_and_box(tmp_path: Path, recognizer: Recognizer) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    page, boxes = render_page([(40, 60, "TOTAL 12.50"), (40, 200, "THANK YOU")])
    (folder / "receipt.png").write_bytes(encode(page))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    reader = DetectOptions(True).page_reader(recognizer, MODEL)
    store = LabelStore(folder)
    pages = drafts.folder_images(folder, detect=True)
    report = draft_pages(store, reader, "english_g2", pages, None, None)
    assert [name for name, _ in report.unreadable] == ["broken.jpg"]
    rows = [row for row in store.rows().values() if row.status == "draft"]
    assert len(rows) == 2 and all(row.page == "receipt.png" and row.image.startswith("lines/") for row in rows)
    for row in rows:
        assert (folder / row.image).is_file() and len(row.box or []) == 4
        truth = min(boxes, key=lambda b: abs(b[:, 1].mean() - np.mean([p[1] for p in row.box])))
        assert abs(np.mean([p[1] for p in row.box]) - truth[:, 1].mean()) < 15  # the box is where the line is
    assert {row.reading.replace(" ", "") for row in rows} == {"TOTAL12.50", "THANKYOU"}
    # The saved crops are lines the recogniser reads the same way again; pages already done are not read again.
    crops = [Path(folder / row.image).read_bytes() for row in rows]
    assert {r.text.replace(" ", "") for r in recognizer.recognize(crops)} == {"TOTAL12.50", "THANKYOU"}
    assert drafts.pending(store, drafts.folder_images(folder, detect=True), detect=True, again=False) == []
