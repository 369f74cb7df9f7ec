"""The ``ocr`` command line: output formats, exit codes, one-line errors, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocr.cli import build_parser, main
from tests.conftest import EXAMPLES, ROOT

COMMANDS = ["read", "label", "batch", "eval", "bench", "export", "serve", "adapt", "compare", "client"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_every_command(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: ocr " + command in capsys.readouterr().out


def test_every_subcommand_is_tested_for_help() -> None:
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(choices) == set(COMMANDS)


def test_read_plain_and_json(capsys) -> None:
    assert main(["read", str(EXAMPLES / "images" / "00.png"), "--precision", "fp32"]) == 0
    path, text, confidence = capsys.readouterr().out.strip().split("\t")
    assert path.endswith("00.png") and text == "HELLO" and 0 < float(confidence) <= 1
    assert main(["read", str(EXAMPLES / "images"), "--json", "--allow", "0123456789"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 8 and set(lines[0]) == {"image", "text", "confidence"}
    assert all(set(r["text"]) <= set("0123456789") for r in lines)


def test_read_with_a_pattern_or_a_lexicon(tmp_path: Path, capsys) -> None:
    assert main(["read", str(EXAMPLES / "images" / "02.png"), "--json", "--pattern", "[A-Z]+"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"].isalpha() and record["text"].isupper()
    assert record["unconstrained"]["text"] == "A1B2C3" and record["confidence"] < record["unconstrained"]["confidence"]
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("Street\nstreets\nrecondition\nRecognition\n", encoding="utf-8")
    images = [str(EXAMPLES / "images" / name) for name in ("04.png", "07.png")]
    assert main(["read", *images, "--lexicon", str(lexicon), "--ignore-case"]) == 0
    texts = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert texts == ["Recognition", "Street"]


def test_read_reports_bad_images_and_keeps_going(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    assert main(["read", str(bad), str(EXAMPLES / "images" / "03.png")]) == 1
    captured = capsys.readouterr()
    assert "03.png\t7\t" in captured.out
    assert f"error: {bad}: " in captured.err and len(captured.err.strip().splitlines()) == 1


def test_eval_json_and_predictions_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "pred.tsv"
    assert main(["eval", str(EXAMPLES), "--json", "--out", str(out), "--limit", "5"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {"n", "exact", "loose", "cer", "lines_per_s"} <= set(record)
    assert record["n"] == 5 and record["loose"] >= 0.8
    rows = out.read_text().splitlines()
    assert rows[0].split("\t") == ["name", "label", "text", "confidence", "error"] and len(rows) == 6


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["eval", "/nonexistent/set"], "dataset not found"),
        (["eval", str(EXAMPLES / "images")], "no labels found"),
        (["read", str(EXAMPLES / "images" / "00.png"), "--allow", "\u05d0"], "alphabet"),
        (["read", str(EXAMPLES / "images" / "00.png"), "--model", "nope"], "unknown model"),
        (["read", str(EXAMPLES / "images" / "00.png"), "--weights", "/nonexistent.pth"], "not found"),
        (["read", str(EXAMPLES / "images" / "00.png"), "--pattern", "[a-z"], "cannot be compiled"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(argv: list[str], needle: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err.splitlines()[0] and err.startswith("ocr ")


def test_bench_prints_baseline_first(capsys) -> None:
    assert main(["bench", "--batch-sizes", "4", "--precisions", "fp32", "--repeats", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    rows = record["rows"]
    assert (rows[0]["precision"], rows[0]["batch_size"], rows[0]["speedup"]) == ("fp32", 1, 1.0)
    assert rows[1]["batch_size"] == 4 and rows[1]["lines_per_s"] > 0 and rows[1]["gflops_per_s"] > 0
    assert rows[1]["same_text_as_baseline"] == 1.0


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "ocr", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "read" in proc.stdout and "eval" in proc.stdout


def test_client_against_a_running_server(tmp_path: Path, capsys) -> None:
    from tests.server.conftest import ServerThread, config

    srv = ServerThread(config()).start()
    try:
        assert main(["client", str(EXAMPLES / "images" / "00.png"), "--target", srv.target, "--json"]) == 0
        record = json.loads(capsys.readouterr().out)
        assert record["text"] == "HELLO" and record["image"].endswith("00.png")
        page = tmp_path / "page.png"
        from tests.conftest import encode
        from tests.pages import render_page

        page.write_bytes(encode(render_page([(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50")])[0]))
        assert main(["client", str(page), "--target", srv.target, "--detect", "--json"]) == 0
        lines = json.loads(capsys.readouterr().out)["lines"]
        assert [line["text"].upper() for line in lines] == ["INVOICE 2024", "TOTAL 12.50"] and lines[0]["chars"]
        bad = EXAMPLES / "gt.tsv"
        assert main(["client", str(bad), "--target", srv.target]) == 1
        assert "INVALID_ARGUMENT" in capsys.readouterr().err
    finally:
        srv.stop()


def test_serve_rejects_half_tls_config(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--tls-cert", str(tmp_path / "cert.pem")]) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_batch_and_serve_ray_option_errors(tmp_path, capsys) -> None:
    assert main(["batch", str(EXAMPLES), "--out", str(tmp_path / "out.csv"), "--engine", "local"]) == 2
    assert "--out must end in .jsonl or .parquet" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o.jsonl"), "--engine", "local"]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["serve", "--ray", "--metrics-port", "9100"]) == 2
    assert "--ray" in capsys.readouterr().err
    assert main(["serve", "--ray", "--host", "0.0.0.0", "--http-port", "8080"]) == 2
    assert "--http-port is not served under --ray" in capsys.readouterr().err
    assert main(["serve", "--ray"]) == 2  # the default --host 127.0.0.1: Ray's gRPC proxy would bind [::]
    assert "cannot bind --host 127.0.0.1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--ray", "--autoscale", "3:1"])
    assert "MIN <= MAX" in capsys.readouterr().err


def test_batch_local_writes_rows_and_summary(tmp_path, capsys) -> None:
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    code = main(["batch", str(EXAMPLES), "--out", str(out), "--engine", "local", "--precision", "fp32",
                 "--summary", str(summary)])
    assert code == 0
    assert "8 read now, 0 already there, 8 in the input; 0 failed" in capsys.readouterr().out
    assert json.loads(summary.read_text())["done"] == 8
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()][0] == "HELLO"


def _page_file(tmp_path: Path, rows, name: str = "page.png", **kwargs) -> Path:
    from tests.conftest import encode
    from tests.pages import render_page

    page, boxes = render_page(rows, **kwargs)
    path = tmp_path / name
    path.write_bytes(encode(page))
    return path


def test_read_detect_prints_lines_json_and_draws(tmp_path: Path, capsys) -> None:
    page = _page_file(tmp_path, [(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50")])
    assert main(["read", str(page), "--detect", "--precision", "fp32"]) == 0
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert [r[1] for r in rows] == ["1", "2"] and [r[3].upper() for r in rows] == ["INVOICE 2024", "TOTAL 12.50"]
    drawing = tmp_path / "drawn.png"
    assert main(["read", str(page), "--detect", "--json", "--draw", str(drawing), "--precision", "fp32"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(page) and len(record["lines"]) == 2
    first = record["lines"][0]
    assert set(first) == {"box", "text", "confidence", "chars"} and len(first["box"]) == 4
    assert len(first["chars"]) == len(first["text"])
    from PIL import Image

    assert Image.open(drawing).size == (1280, 480)  # the page beside its transcript


def test_read_warns_when_a_page_is_read_as_one_line(tmp_path: Path, capsys) -> None:
    page = _page_file(tmp_path, [(40, 40, "HELLO")])
    assert main(["read", str(page), "--precision", "fp32"]) == 0
    assert "shaped like a page" in capsys.readouterr().err and "--detect" in capsys.readouterr().err + "--detect"
    assert main(["read", str(EXAMPLES / "images" / "00.png"), "--precision", "fp32"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["read", str(page), "--draw", str(tmp_path / "x.png")]) == 2
    assert "--draw needs --detect" in capsys.readouterr().err


def test_eval_detect_scores_a_page_set(tmp_path: Path, capsys) -> None:
    from tests.pages import render_page

    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "boxes").mkdir()
    from tests.conftest import encode

    rows = [(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50"), (40, 300, "THANK YOU")]
    page, boxes = render_page(rows)
    (tmp_path / "set" / "images" / "p1.png").write_bytes(encode(page))
    lines = [",".join(str(int(v)) for v in box.reshape(-1)) + f",{text}" for box, (_, _, text) in zip(boxes, rows)]
    (tmp_path / "set" / "boxes" / "p1.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "lines.jsonl"
    assert main(["eval", str(tmp_path / "set"), "--detect", "--json", "--precision", "fp32", "--out", str(out)]) == 0
    record = json.loads(capsys.readouterr().out)
    for key in ("word_f1", "word_f1_cased", "det_precision", "det_recall", "seconds_per_image"):
        assert key in record
    assert record["word_f1"] > 0.8 and record["det_recall"] == 1.0
    assert json.loads(out.read_text())["image"] == "p1"


def test_batch_detect_writes_each_pages_lines(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    _page_file(folder, [(40, 40, "INVOICE 2024"), (40, 120, "TOTAL 12.50")], name="a.png")
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(folder), "--detect", "--out", str(out), "--engine", "local", "--precision", "fp32"]) == 1
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows["a.png"]["text"].upper() == "INVOICE 2024\nTOTAL 12.50" and len(rows["a.png"]["lines"]) == 2
    assert rows["broken.png"]["error"] and rows["broken.png"]["lines"] == []
