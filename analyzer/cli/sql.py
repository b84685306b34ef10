"""`analyzer sql`: read-only SQL over the dataset, one-shot or at an interactive prompt.

The query runs on :func:`analyzer.sql.open_readonly`'s connection (the ``events`` views plus the
investigation views, file access off). This module only renders: a terminal table cut to the
screen, CSV, JSON, JSON Lines or Parquet, to stdout or atomically to ``--output``.
"""

from __future__ import annotations

import base64
import csv
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.cli.app import ConfigOption, DataOption, VerboseOption, command, load_config, stderr, stdout
from analyzer.errors import AnalyzerError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from analyzer.sql import Result

# DuckDB, PyArrow and analyzer.sql are imported by the functions that use them: start-up time.


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

TABLE_OVERHEAD = 5  # header, rule, footer, the shell prompt and one spare line
MAX_COLUMN_WIDTH = 48
JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS

PROMPT, CONTINUATION = "sql> ", " ..> "
HELP = """Type SQL ending with ';' (several lines are fine). Views: events, events_all, {views}.
Macros: {macros}. The connection is read-only; times are UTC.
  .tables   list views and macros
  .help     this text
  .quit     leave (or Ctrl-D); Ctrl-C cancels the statement being typed"""


# --- values -----------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """orjson's fallback for the Arrow values it does not know."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _text(value: Any, null: str = "") -> str:
    """One value as text: strings as they are, everything else as its JSON form without quotes."""
    if value is None:
        return null
    if isinstance(value, str):
        return value
    encoded = orjson.dumps(value, default=_default, option=JSON_OPTIONS).decode()
    return encoded[1:-1] if encoded.startswith('"') else encoded


# --- output formats -------------------------------------------------------------------------------


def _rows(batch: pa.RecordBatch) -> Iterator[tuple[Any, ...]]:
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
        for row in _rows(batch):
            yield orjson.dumps(dict(zip(names, row, strict=True)), default=_default, option=JSON_OPTIONS).decode()


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
        writer.writerows([cell(v) if isinstance(v, str) else _text(v) for v in row] for row in _rows(batch))
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


def default_max_rows() -> int:
    """Rows that fit on the terminal with the table's header and footer (``LINES`` when piped)."""
    return max(1, shutil.get_terminal_size((100, 24)).lines - TABLE_OVERHEAD)


def _cell(value: Any) -> str:
    """A table cell: one line, control characters visible (``\\n``, ``\\x1b``), NULL spelled out."""
    from analyzer.sql import visible

    return visible(_text(value, "NULL").replace("\n", "\\n"))


def _fitting_columns(names: list[str], rows: list[list[str]], width: int) -> int:
    """How many leading columns fit in ``width`` (at least one), like the DuckDB shell does."""
    used = 0
    for i, name in enumerate(names):
        wanted = min(max([len(name), *(len(r[i]) for r in rows)]), MAX_COLUMN_WIDTH)
        used += wanted + 3
        if used > width and i > 0:
            return i
    return len(names)


def render_table(result: Result, console: Console, max_rows: int | None = None) -> int:
    """Print the rows as a table cut to ``max_rows`` (0: all), with a note of what was left out."""
    import pyarrow as pa

    from analyzer.sql import visible

    limit = default_max_rows() if max_rows is None else max_rows
    names = result.reader.schema.names
    if names == ["explain_key", "explain_value"]:  # EXPLAIN: DuckDB's plan drawing, as drawn
        for batch in result.batches():
            for value in batch.column(1).to_pylist():
                console.print(Text(str(value)))
        return 0
    rows: list[list[str]] = []
    total = 0
    for batch in result.batches():
        room = batch.num_rows if not limit else max(0, limit - len(rows))
        if room:
            rows += [[_cell(v) for v in row] for row in _rows(batch.slice(0, room))]
        total += batch.num_rows
    if not names or (not total and not result.shows_rows):
        return total
    shown = _fitting_columns(names, rows, console.width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for field in list(result.reader.schema)[:shown]:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_decimal(field.type)
        table.add_column(
            Text(visible(field.name)),
            no_wrap=True,
            overflow="ellipsis",
            max_width=MAX_COLUMN_WIDTH,
            justify="right" if numeric else "left",
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row[:shown]))
    console.print(table)
    note = f"{total:,} row{'s' if total != 1 else ''}"
    if total > len(rows):
        note += (
            f" ({len(rows):,} shown, {total - len(rows):,} not shown: "
            "--max-rows 0, --format csv or --output FILE for all)"
        )
    if shown < len(names):
        note += f"; {len(names)} columns ({shown} shown: select fewer, or use --format)"
    console.print(Text(note, style="dim"))
    return total


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
    """Write ``result`` in ``fmt`` to ``output`` (atomically) or to the console's stream."""
    if fmt is OutputFormat.parquet:
        if output is not None:
            with atomic_file(output, binary=True) as handle:
                write_parquet(result, handle)
            return
        if console.file.isatty():
            raise AnalyzerError("--format parquet writes binary: give --output FILE or redirect stdout")
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
        render_table(result, console, max_rows)
    elif fmt is OutputFormat.csv and console.file.isatty():
        write_csv(result, console.file, terminal=True)
        console.file.flush()
    else:
        TEXT_WRITERS[fmt](result, console.file)
        console.file.flush()


# --- the interactive prompt ---------------------------------------------------------------------


def history_file() -> Path:
    """``$XDG_STATE_HOME/analyzer/history`` (``~/.local/state/analyzer/history`` by default)."""
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "analyzer" / "history"


@contextmanager
def line_history(path: Path) -> Iterator[None]:
    """GNU readline history kept in ``path`` across sessions (nothing when readline is missing)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        yield
        return
    readline.set_history_length(2000)
    with suppress(OSError):
        readline.read_history_file(path)
    try:
        yield
    finally:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError as exc:
            stderr.print(f"warning: history not saved: {exc}", markup=False)


def _list_objects(con: duckdb.DuckDBPyConnection, console: Console) -> None:
    names = con.execute(
        "select view_name, 'view' from duckdb_views() where not internal and not starts_with(view_name, '_') "
        "union all select distinct function_name, replace(function_type, '_', ' ') from duckdb_functions() "
        "where not internal and function_type in ('macro', 'table_macro') order by 2 desc, 1"
    ).fetchall()
    for name, kind in names:
        console.print(Text(f"{kind:12}{name}"))


def repl(
    con: duckdb.DuckDBPyConnection,
    *,
    read: Callable[[str], str] = input,
    console: Console = stdout,
    errors: Console = stderr,
    fmt: OutputFormat = OutputFormat.table,
    max_rows: int | None = None,
) -> None:
    """Read statements (several lines each, up to ``;``), run them, show the rows; until ``.quit``.

    ``read`` is ``input`` at a terminal (readline gives editing and history); tests pass a script.
    """
    import duckdb

    from analyzer.sql import execute_each, statement_complete
    from analyzer.store.views import MACROS, VIEWS

    errors.print("read-only SQL over the dataset; end statements with ';', .help for help, .quit to leave.",
                 markup=False)
    lines: list[str] = []
    while True:
        try:
            line = read(CONTINUATION if lines else PROMPT)
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("^C")
            lines = []
            continue
        if not lines and line.strip().startswith("."):
            word = line.strip().split()[0]
            if word in (".quit", ".exit", ".q"):
                return
            if word == ".help":
                console.print(HELP.format(views=", ".join(VIEWS), macros=", ".join(MACROS)), markup=False)
            elif word == ".tables":
                _list_objects(con, console)
            else:
                errors.print(f"error: unknown command {word} (try .help)", markup=False)
            continue
        if not lines and not line.strip():
            continue
        lines.append(line)
        text = "\n".join(lines)
        if not statement_complete(text):
            continue
        lines = []
        try:
            with closing(execute_each(con, text)) as results:  # an interrupted result is let go at once
                for result in results:
                    if fmt is OutputFormat.table:
                        render_table(result, console, max_rows)
                    elif fmt is OutputFormat.parquet:
                        raise AnalyzerError("parquet output needs --output; use csv, json or jsonl at the prompt")
                    else:
                        TEXT_WRITERS[fmt](result, console.file)
        except AnalyzerError as exc:
            errors.print(f"error: {exc}", markup=False)
        except (KeyboardInterrupt, duckdb.InterruptException):
            con.interrupt()
            errors.print("interrupted", markup=False)


# --- the command ---------------------------------------------------------------------------------


def _query_text(query: str | None, file: Path | None) -> str | None:
    """The SQL to run: the argument, the file, or stdin; None for the interactive prompt."""
    if query is not None and file is not None:
        raise typer.BadParameter("give the query as an argument or with --file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AnalyzerError(f"{file}: {exc.strerror or exc}") from exc
    if query == "-" or (query is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return query


def _output_format(output: Path, fmt: OutputFormat | None) -> OutputFormat:
    """The format for ``--output``: ``--format``, else its suffix's; a suffix that names no format (when
    one must be chosen) or another one than ``--format`` is a usage error: one line, exit 2."""
    suffix = output.suffix.lower()
    implied = OutputFormat.table if suffix == ".txt" else SUFFIX_FORMATS.get(suffix)
    if fmt is None and implied is None:
        known = ", ".join([*SUFFIX_FORMATS, ".txt"])
        what = f"suffix {suffix!r}" if suffix else "no suffix"
        message = f"{output}: {what} names no output format (known: {known}); give --format"
    elif fmt is not None and implied not in (None, fmt) and suffix != ".txt":
        message = f"{output}: the suffix {suffix!r} means --format {implied}, not {fmt}: change one of them"
    else:
        return fmt or implied or OutputFormat.table
    stderr.print(f"error: --output: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _check_output(output: Path, data: Path) -> None:
    """The dataset is read-only for this command too: no result file lands inside it."""
    if output.resolve().is_relative_to(data.resolve()):
        raise AnalyzerError(f"{output}: --output must be outside the dataset directory {data}")


@command("sql")
def sql_command(
    query: Annotated[
        str | None,
        typer.Argument(help="SQL to run (several statements: the last one's rows are shown). '-' reads stdin."),
    ] = None,
    data: DataOption = Path("ctdata"),
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the SQL from this file.")] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-F", help="Output format (default: from --output's suffix, else table)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout.")
    ] = None,
    max_rows: Annotated[
        int | None,
        typer.Option("--max-rows", min=0, help="Rows a table shows (default: the terminal height; 0: all)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Stop (exit 1) when the query runs longer than this many seconds "
                     "(default: [sql] timeout, else no limit)."),
    ] = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run read-only SQL against the dataset's `events` view and the investigation views.

    Views: events (deduplicated), events_all, signins (one row per console / Identity Center
    sign-in: outcome, mfa_used, federated, principal, source_ip...). Macros: req(e, 'path'),
    resp, addl, svc, extra_field read JSON fields of a row `e`; principal_timeline('arn or user
    name', since := '2024-05-01') lists what a principal did.
    The SQL cannot write or delete files: DuckDB's file access is off and its settings locked.
    With no query at a terminal, opens a prompt (history, multi-line statements up to ';').

    Example: analyzer sql "select principal, source_ip, count(*) from signins where outcome = 'Failure' group by all"
    """
    from analyzer.settings import seconds
    from analyzer.sql import execute, open_readonly
    from analyzer.store.layout import Layout
    from analyzer.store.sandbox import time_limit
    from analyzer.store.snapshot import read as read_committed

    configured = seconds(load_config(config, verbose).settings.sql.timeout)
    timeout = timeout if timeout is not None else configured
    text = _query_text(query, file)
    if output is not None:
        _check_output(output, data)
    fmt = _output_format(output, fmt) if output else fmt or OutputFormat.table
    snapshot = read_committed(Layout(data)) if Layout(data).internal.exists() else None
    con = open_readonly(data, snapshot=snapshot)
    try:
        if text is None:
            if output is not None:
                raise typer.BadParameter("--output needs a query (argument, --file or stdin)")
            with line_history(history_file()):
                repl(con, fmt=fmt, max_rows=max_rows)
            return
        try:
            with time_limit(con, timeout):
                emit(execute(con, text), fmt, output, max_rows, stdout)
        except AnalyzerError:
            # A writer retired (and deleted) files of this snapshot meanwhile: once more on the new one,
            # where nothing was shown yet (a file appears whole or not at all; a table prints at the end).
            if snapshot is None or not snapshot.retired() or (output is None and fmt is not OutputFormat.table):
                raise
            con.close()
            con = open_readonly(data)
            with time_limit(con, timeout):
                emit(execute(con, text), fmt, output, max_rows, stdout)
    finally:
        con.close()
