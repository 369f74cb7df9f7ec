"""``ocr batch``: inputs, result rows equal to ``ocr eval``, streaming outputs, resuming, and the Ray Data engine."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from crnn import DEFAULT_MODEL, Recognizer
from ocr.commands.batch import list_items, run_batch
from ocr.config import BatchConfig, ModelOptions
from ocr.data.datasets import DatasetError, open_dataset
from ocr.data.lmdb_io import write_lmdb
from ocr.eval.lines import evaluate
from ocr.output.batch import JsonlResults
from tests.conftest import EXAMPLES, ROOT, SHARED_DATA

FP32 = ModelOptions(device="cpu", precision="fp32", threads=1)


def batch_config(source: Path, out: Path, **overrides) -> BatchConfig:
    base = BatchConfig(input=source, out=out, allow=None, engine="local", ray_address=None, concurrency=1,
                       batch_size=64, cpus_per_worker=1.0, gpus_per_worker=0.0, limit=None, model=FP32)
    return replace(base, **overrides)


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def labelled_set() -> Path:
    """A shared set when present, else the bundled examples (both in gt.tsv layout)."""
    shared = SHARED_DATA / "iiit5k_test_even_scenes"
    return shared if shared.is_dir() else EXAMPLES


def test_inputs_folder_list_file_lmdb_and_duplicates(tmp_path) -> None:
    images = sorted((EXAMPLES / "images").glob("*.png"))
    folder = list_items(EXAMPLES / "images")
    assert [i["id"] for i in folder] == [p.name for p in images] and folder[0]["label"] is None
    listing = tmp_path / "list.txt"
    listing.write_text("# my crops\n" + "\n".join(str(p) for p in images[:3]) + "\n\n")
    assert [i["path"] for i in list_items(listing)] == [str(p) for p in images[:3]]
    labelled = list_items(EXAMPLES)
    assert [i["label"] for i in labelled] == [s.label for s in open_dataset(EXAMPLES)]
    write_lmdb(tmp_path / "lmdb", [(p.read_bytes(), "x") for p in images[:2]])
    assert [(i["source"], i["index"]) for i in list_items(tmp_path / "lmdb")] == [("lmdb", 1), ("lmdb", 2)]
    listing.write_text(f"{images[0]}\n{images[0]}\n")
    with pytest.raises(DatasetError, match="duplicate ids"):
        list_items(listing)
    with pytest.raises(FileNotFoundError):
        list_items(tmp_path / "missing")


def test_rows_equal_eval_predictions_and_bad_images_are_rows(tmp_path, recognizer) -> None:
    data = tmp_path / "set"
    shutil.copytree(EXAMPLES, data)
    (data / "images" / "03.png").write_bytes(b"not a png")  # one corrupt image
    (data / "images" / "05.png").unlink()  # one missing image
    summary = run_batch(batch_config(data, tmp_path / "out.jsonl", batch_size=3), progress=False)
    rows = {r["id"]: r for r in read_rows(tmp_path / "out.jsonl")}
    predictions = evaluate(recognizer, open_dataset(data), progress=False).predictions
    assert summary.done == len(rows) == len(predictions) == 8
    assert {p.name: p.text for p in predictions} == {i: r["text"] for i, r in rows.items()}
    assert {p.name: p.label for p in predictions} == {i: r["label"] for i, r in rows.items()}
    assert "not a decodable image" in rows["images/03.png"]["error"]
    assert "cannot read" in rows["images/05.png"]["error"]
    assert sum(summary.failures.values()) == 2
    assert all(r["error"] is None for i, r in rows.items() if i not in ("images/03.png", "images/05.png"))


def test_rerun_skips_what_is_there_and_torn_line_is_redone(tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    first = run_batch(batch_config(EXAMPLES, out, limit=5), progress=False)
    assert first.done == 5
    with out.open("a") as f:
        f.write('{"id": "images/05.png", "te')  # a write cut off by a crash
    assert JsonlResults(out).done_ids() == {f"images/0{i}.png" for i in range(5)}
    second = run_batch(batch_config(EXAMPLES, out), progress=False)
    other = tmp_path / "notes.jsonl"
    other.write_text("my notes\n")  # not ours: refused, never truncated
    with pytest.raises(ValueError, match="not ocr batch output"):
        run_batch(batch_config(EXAMPLES, other), progress=False)
    assert other.read_text() == "my notes\n"
    assert (second.skipped, second.done) == (5, 3)
    ids = [r["id"] for r in read_rows(out)]
    assert len(ids) == len(set(ids)) == 8


def test_parquet_output_resumes(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "out.parquet"
    run_batch(batch_config(EXAMPLES, out, limit=3), progress=False)
    again = run_batch(batch_config(EXAMPLES, out), progress=False)
    assert (again.skipped, again.done) == (3, 5)
    rows = read_rows(out)
    assert sorted(r["id"] for r in rows) == sorted(s.name for s in open_dataset(EXAMPLES))
    assert not list(out.glob(".*.tmp"))


def test_killed_run_resumes_without_duplicates(tmp_path) -> None:
    """SIGKILL a real run part-way (a torn last line is likely), rerun it, and get each image exactly once."""
    images = sorted((EXAMPLES / "images").glob("*.png"))
    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(400):
        shutil.copy(images[k % len(images)], folder / f"{k:04d}_{images[k % len(images)].name}")
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "ocr", "batch", str(folder), "--out", str(out), "--engine", "local",
               "--batch-size", "8", "--device", "cpu", "--precision", "fp32", "--threads", "1"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while not (out.exists() and out.stat().st_size > 2000) and proc.poll() is None:
            assert time.monotonic() < end, "the first run wrote nothing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    written_before = len(JsonlResults(out).done_ids())
    assert 0 < written_before < 400, "kill the run part-way"
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"{written_before} already there" in finished.stdout
    rows = read_rows(out)
    assert len(rows) == len({r["id"] for r in rows}) == 400
    expected = {p.name: s.label for p, s in zip(images, open_dataset(EXAMPLES))}
    assert all(r["text"] == expected[r["id"].split("_", 1)[1]] for r in rows)


def test_without_ray_auto_is_the_local_engine(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("ocr.commands.batch.ray_available", lambda: False)
    summary = run_batch(batch_config(EXAMPLES, tmp_path / "out.jsonl", engine="auto", limit=2), progress=False)
    assert (summary.engine, summary.done) == ("local", 2)
    with pytest.raises(ValueError, match="pip install"):
        run_batch(batch_config(EXAMPLES, tmp_path / "out2.jsonl", engine="ray"), progress=False)


def test_ray_data_rows_equal_eval_predictions(tmp_path, recognizer) -> None:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    source = labelled_set()
    limit = 300
    try:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
        summary = run_batch(batch_config(source, tmp_path / "out.parquet", engine="ray", concurrency=2, limit=limit),
                            progress=False)
    finally:
        ray.shutdown()
    rows = read_rows(tmp_path / "out.parquet")
    default = Recognizer(DEFAULT_MODEL, device="cpu", precision="fp32")  # what the batch job loads unless told
    predictions = evaluate(default, open_dataset(source), limit=limit, progress=False).predictions
    assert summary.engine == "ray" and summary.done == len(rows) == len(predictions)
    assert {p.name: p.text for p in predictions} == {r["id"]: r["text"] for r in rows}
