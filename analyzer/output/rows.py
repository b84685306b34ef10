"""Query results as files and text: CSV, JSON, JSON Lines and Parquet writers, streamed batch by batch.

What ``analyzer sql`` writes (and a notebook can too): every writer takes a
:class:`~analyzer.sql.Result` (the rows of a statement, as Arrow batches) and an open file, returns
the rows it wrote, and never holds the whole result in memory. :func:`emit` chooses the writer and
where it goes (a terminal, a pipe, or a file that appears whole or not at all). Values are made
safe for their consumer: a CSV cell cannot start a formula; at a terminal, control characters are
shown as escapes (:mod:`analyzer.alerts.sanitize`); JSON stays exact.
"""

from __future__ import annotations

import base64
import csv
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from analyzer.errors import AnalyzerError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.console import Console

    from analyzer.sql import Result


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"


SUFFIX_FORMATS = {
    ".csv": OutputFormat.csv,
    ".json": OutputFormat.json,
    ".jsonl": OutputFormat.jsonl,
    ".ndjson": OutputFormat.jsonl,
    ".parquet": OutputFormat.parquet,
}
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


# --- values -----------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """orjson's fallback for the Arrow values it does not know."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def text_of(value: Any, null: str = "") -> str:
    """One value as text: strings as they are, everything else as its JSON form without quotes."""
    if value is None:
        return null
    if isinstance(value, str):
        return value
    encoded = orjson.dumps(value, default=json_default, option=JSON_OPTIONS).decode()
    return encoded[1:-1] if encoded.startswith('"') else encoded


# --- output formats -------------------------------------------------------------------------------


def rows_of(batch: pa.RecordBatch) -> Iterator[tuple[Any, ...]]:
    """A batch's rows as tuples (column by column: two columns may share a name)."""
    return zip(*(column.to_pylist() for column in batch.columns), strict=True)


def _json_names(names: list[str]) -> list[str]:
    """Unique keys for JSON objects: a repeated column name gets ``_2``, ``_3``… (DuckDB allows repeats)."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _json_lines(result: Result) -> Iterator[str]:
    names = _json_names(result.reader.schema.names)
    for batch in result.batches():
        for row in rows_of(batch):
            yield orjson.dumps(dict(zip(names, row, strict=True)), default=json_default, option=JSON_OPTIONS).decode()


def write_csv(result: Result, out: IO[str], *, terminal: bool = False) -> int:
    """CSV with a header; nested values as JSON text, times as ISO 8601 (``…Z`` for UTC); a text
    cell starting with ``= + - @``, tab or CR gets a leading ``'`` (:func:`~analyzer.alerts.sanitize.spreadsheet`).
    ``terminal``: control characters written as escapes (a terminal would obey them; a file keeps them)."""
    from analyzer.alerts.sanitize import spreadsheet, visible

    def cell(value: str) -> str:
        return visible(spreadsheet(value)) if terminal else spreadsheet(value)

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([cell(name) for name in result.reader.schema.names])
    rows = 0
    for batch in result.batches():  # text a spreadsheet would run as a formula is quoted (OWASP)
        writer.writerows([cell(v) if isinstance(v, str) else text_of(v) for v in row] for row in rows_of(batch))
        rows += batch.num_rows
    return rows


def write_jsonl(result: Result, out: IO[str]) -> int:
    """One JSON object per row (JSON Lines): streams, and ``jq``/Athena/Polars read it as is."""
    rows = 0
    for line in _json_lines(result):
        out.write(line + "\n")
        rows += 1
    return rows


def write_json(result: Result, out: IO[str]) -> int:
    """One JSON array of row objects, written as the rows come (never held in memory)."""
    rows = 0
    out.write("[")
    for line in _json_lines(result):
        out.write(("," if rows else "") + "\n" + line)
        rows += 1
    out.write("\n]\n" if rows else "]\n")
    return rows


def write_parquet(result: Result, out: IO[bytes]) -> int:
    """Parquet with the result's own Arrow types (nested columns stay nested)."""
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(out, result.reader.schema) as writer:
        for batch in result.batches():
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


TEXT_WRITERS: dict[OutputFormat, Callable[[Result, IO[str]], int]] = {
    OutputFormat.csv: write_csv,
    OutputFormat.json: write_json,
    OutputFormat.jsonl: write_jsonl,
}


def output_format(output: Path, fmt: OutputFormat | None) -> OutputFormat:
    """The format for a file: ``fmt``, else its suffix's; a suffix that names no format (when one must be
    chosen) or another one than ``fmt`` is a :class:`~analyzer.errors.UsageError` naming ``--output``."""
    suffix = output.suffix.lower()
    implied = OutputFormat.table if suffix == ".txt" else SUFFIX_FORMATS.get(suffix)
    if fmt is None and implied is None:
        known = ", ".join([*SUFFIX_FORMATS, ".txt"])
        what = f"suffix {suffix!r}" if suffix else "no suffix"
        raise UsageError(f"{output}: {what} names no output format (known: {known}); give --format", option="--output")
    if fmt is not None and implied not in (None, fmt) and suffix != ".txt":
        raise UsageError(
            f"{output}: the suffix {suffix!r} means --format {implied}, not {fmt}: change one of them",
            option="--output",
        )
    return fmt or implied or OutputFormat.table


# --- where the output goes --------------------------------------------------------------------


@contextmanager
def atomic_file(path: Path, *, binary: bool) -> Iterator[IO[Any]]:
    """A file that appears at ``path`` complete or not at all (temp file in the same directory)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise AnalyzerError(f"{path}: the directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # what open() would have made, not mkstemp's 0600
        handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(result: Result, fmt: OutputFormat, output: Path | None, max_rows: int | None, console: Console) -> None:
    """Write ``result`` in ``fmt`` to ``output`` (atomically) or to the console's stream.

    A table is cut to the screen only at a terminal (``max_rows`` None: the terminal's height); piped
    or written to a file it has every row, unless ``max_rows`` says otherwise.
    """
    from rich.console import Console

    from analyzer.output.table import render_table

    if fmt is OutputFormat.parquet:
        if output is not None:
            with atomic_file(output, binary=True) as handle:
                write_parquet(result, handle)
            return
        if console.file.isatty():
            raise UsageError("parquet is binary: give --output FILE or redirect standard output", option="--format")
        buffer = console.file.buffer  # type: ignore[attr-defined]
        write_parquet(result, buffer)
        buffer.flush()
        return
    if output is not None:
        with atomic_file(output, binary=False) as handle:
            if fmt is OutputFormat.table:  # a file has no screen: every row and column unless told
                wide = Console(file=handle, width=100_000, highlight=False, color_system=None)
                render_table(result, wide, 0 if max_rows is None else max_rows)
            else:
                TEXT_WRITERS[fmt](result, handle)
        return
    if fmt is OutputFormat.table:
        render_table(result, console, max_rows if max_rows is not None or console.is_terminal else 0)
    elif fmt is OutputFormat.csv and console.file.isatty():
        write_csv(result, console.file, terminal=True)
        console.file.flush()
    else:
        TEXT_WRITERS[fmt](result, console.file)
        console.file.flush()
