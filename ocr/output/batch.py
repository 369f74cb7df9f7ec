"""Where ``ocr batch`` streams its results: JSON Lines or a Parquet folder, both resumable.

Each row is ``{"id", "text", "confidence", "error", "label"}`` (``error``
and ``label`` may be null); with ``--detect`` also ``lines``, each page's
lines as ``{"box", "text", "confidence"}`` objects (in Parquet, that list
as a JSON string). Rows reach the disk as they come, so an
interrupted run keeps what it finished; opening the same output again
reports the ids already there, and the run skips them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Protocol

COLUMNS = ("id", "text", "confidence", "error", "label")


class ResultsWriter(Protocol):
    path: Path

    def done_ids(self) -> set[str]: ...

    def write(self, rows: list[dict]) -> None: ...

    def close(self) -> None: ...


class JsonlResults:
    """One JSON object per line, appended and flushed per batch; a torn last line is dropped on reopen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._done: set[str] = set()
        if path.exists():
            self._done = self._repair()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def _repair(self) -> set[str]:
        done: set[str] = set()
        keep = 0  # bytes of complete, valid lines
        with self.path.open("rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.endswith(b"\n"):
                    break  # the last line, cut short by a crash: it is redone
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
                if not isinstance(row, dict) or "id" not in row:
                    raise ValueError(f"{self.path}:{number}: not ocr batch output (no JSON row with an 'id'); "
                                     "choose another --out, this file is left as it is")
                done.add(row["id"])
                keep += len(line)
        if keep < self.path.stat().st_size:
            with self.path.open("r+b") as f:
                f.truncate(keep)
        return done

    def done_ids(self) -> set[str]:
        return set(self._done)

    def write(self, rows: list[dict]) -> None:
        self._file.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class ParquetResults:
    """A folder of Parquet parts (``part-*.parquet``), each written whole then renamed into place.

    Read it back as one table: ``pyarrow.parquet.read_table(path)`` or ``pandas.read_parquet(path)``.
    """

    def __init__(self, path: Path, rows_per_part: int = 2048) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ValueError("Parquet output needs pyarrow (pip install pyarrow); or use --out results.jsonl") from exc
        self._pa, self._pq = pa, pq
        self.path = path
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder of Parquet parts; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        self._schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("confidence", pa.float32()),
                                  ("error", pa.string()), ("label", pa.string()), ("lines", pa.string())])
        self._rows_per_part = rows_per_part
        self._pending: list[dict] = []

    def done_ids(self) -> set[str]:
        parts = sorted(self.path.glob("part-*.parquet"))
        return {i for part in parts for i in self._pq.read_table(part, columns=["id"]).column("id").to_pylist()}

    def write(self, rows: list[dict]) -> None:
        self._pending.extend({**row, "lines": json.dumps(row["lines"])} if "lines" in row else row for row in rows)
        if len(self._pending) >= self._rows_per_part:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = self._pa.Table.from_pylist(self._pending, schema=self._schema)
        name = f"part-{len(list(self.path.glob('part-*.parquet'))):05d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.path / f".{name}.tmp"
        self._pq.write_table(table, tmp)
        os.replace(tmp, self.path / name)
        self._pending = []

    def close(self) -> None:
        self._flush()


def open_results(path: Path) -> ResultsWriter:
    """A writer for ``path``: ``.jsonl`` appends lines, ``.parquet`` fills a folder of parts."""
    if path.suffix == ".jsonl":
        return JsonlResults(path)
    if path.suffix == ".parquet":
        return ParquetResults(path)
    raise ValueError(f"--out must end in .jsonl or .parquet, got {path}")
