"""`analyzer sql`: read-only SQL over the dataset, one-shot or at an interactive prompt.

The query runs on :func:`analyzer.sql.open_readonly`'s connection (the ``events`` views plus the
investigation views, file access off). The writers (CSV, JSON, JSON Lines, Parquet, the terminal
table) are the library's, :mod:`analyzer.output`; this module holds the command and the prompt.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from analyzer.cli.app import ConfigOption, DataOption, VerboseOption, command, load_config, stderr, stdout
from analyzer.errors import AnalyzerError, UsageError
from analyzer.output.rows import (  # noqa: F401  (the names this module had before the writers moved)
    SUFFIX_FORMATS,
    TEXT_WRITERS,
    OutputFormat,
    atomic_file,
    emit,
    write_csv,
    write_json,
    write_jsonl,
    write_parquet,
)
from analyzer.output.table import PROMPT_HINT, default_max_rows, render_table

if TYPE_CHECKING:
    import duckdb

# DuckDB, PyArrow and analyzer.sql are imported by the functions that use them: start-up time.

PROMPT, CONTINUATION = "sql> ", " ..> "
HELP = """Type SQL ending with ';' (several lines are fine). Views: events, events_all, {views};
cloudtrail_logs is events under the name of AWS's Athena examples. Macros: {macros}.
The connection is read-only; times are UTC.
  .tables          list views and macros
  .mode FORMAT     how rows are shown: table, csv, json or jsonl (now: {mode})
  .maxrows N       rows a table shows; 0: all (now: {maxrows})
  .help            this text
  .quit            leave (or Ctrl-D); Ctrl-C cancels the statement being typed"""
PROMPT_FORMATS = tuple(f for f in OutputFormat if f is not OutputFormat.parquet)


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


class _Prompt:
    """What the prompt's dot commands change: how rows are shown."""

    def __init__(self, fmt: OutputFormat, max_rows: int | None) -> None:
        self.fmt = fmt
        self.max_rows = max_rows

    def command(self, line: str, con: duckdb.DuckDBPyConnection, console: Console, errors: Console) -> bool:
        """Run one dot command; False for ``.quit``."""
        from analyzer.store.views import MACROS, VIEWS

        word, *args = line.split()
        if word in (".quit", ".exit", ".q"):
            return False
        if word == ".help":
            maxrows = "the screen" if self.max_rows is None else "all" if self.max_rows == 0 else f"{self.max_rows:,}"
            console.print(HELP.format(views=", ".join(VIEWS), macros=", ".join(MACROS), mode=self.fmt.value,
                                      maxrows=maxrows), markup=False)
        elif word == ".tables":
            _list_objects(con, console)
        elif word == ".mode":
            names = ", ".join(f.value for f in PROMPT_FORMATS)
            if len(args) != 1 or args[0] not in names.split(", "):
                errors.print(f"error: .mode takes one of {names} (now: {self.fmt.value})", markup=False)
            else:
                self.fmt = OutputFormat(args[0])
        elif word == ".maxrows":
            if len(args) != 1 or not args[0].isdigit():
                errors.print("error: .maxrows takes a number of rows (0: all)", markup=False)
            else:
                self.max_rows = int(args[0])
        else:
            errors.print(f"error: unknown command {word} (try .help)", markup=False)
        return True


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

    ``.mode`` and ``.maxrows`` change how rows are shown. ``read`` is ``input`` at a terminal
    (readline gives editing and history); tests pass a script.
    """
    import duckdb

    from analyzer.sql import execute_each, statement_complete

    if fmt is OutputFormat.parquet:
        raise UsageError("parquet output needs --output FILE; the prompt shows table, csv, json or jsonl",
                         option="--format")
    errors.print("read-only SQL over the dataset; end statements with ';', .help for help, .quit to leave.",
                 markup=False)
    prompt = _Prompt(fmt, max_rows)
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
            if not prompt.command(line.strip(), con, console, errors):
                return
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
                    if prompt.fmt is OutputFormat.table:
                        render_table(result, console, prompt.max_rows, hint=PROMPT_HINT)
                    else:
                        TEXT_WRITERS[prompt.fmt](result, console.file)
        except AnalyzerError as exc:
            errors.print(f"error: {exc}", markup=False)
        except (KeyboardInterrupt, duckdb.InterruptException):
            con.interrupt()
            errors.print("interrupted", markup=False)


# --- the command ---------------------------------------------------------------------------------


def _query_text(query: str | None, file: Path | None) -> str | None:
    """The SQL to run: the argument, the file, or stdin; None for the interactive prompt."""
    if query is not None and file is not None:
        raise UsageError("give the query as an argument or with --file, not both", option="--file")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AnalyzerError(f"{file}: {exc.strerror or exc}") from exc
    if query == "-" or (query is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return query


def _check_output(output: Path, data: Path) -> None:
    """The dataset is read-only for this command too: no result file lands inside it."""
    if output.resolve().is_relative_to(data.resolve()):
        raise AnalyzerError(f"{output}: --output must be outside the dataset directory {data}")


@command("sql")
def sql_command(
    query: Annotated[
        str | None,
        typer.Argument(metavar="SQL", help="SQL to run (several statements: the last one's rows are shown). "
                       "'-' reads stdin.", show_default=False),
    ] = None,
    data: DataOption = Path("ctdata"),
    file: Annotated[Path | None, typer.Option("--file", metavar="FILE", help="Read the SQL from this file.")] = None,
    fmt: Annotated[
        OutputFormat | None,
        typer.Option("--format", "-f", "-F", metavar="FORMAT", help="Output format: table, csv, json, jsonl or "
                     "parquet (default: from --output's suffix, else table). -f means the format in every command."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to this file (atomically) instead "
                                  "of stdout.")
    ] = None,
    max_rows: Annotated[
        int | None,
        typer.Option("--max-rows", min=0, metavar="N", help="Rows a table shows at a terminal (default: the "
                     "terminal's height; 0: all). Piped or written to a file, a table has every row."),
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

    Views: events (deduplicated; also as cloudtrail_logs, the name AWS's Athena examples use),
    events_all, signins (one row per console / Identity Center sign-in: outcome, mfa_used,
    federated, principal, source_ip and more). Macros: req(e, 'path'), resp, addl, svc, extra_field
    read JSON fields of a row `e`; principal_timeline('arn or user name', since := '2024-05-01')
    lists what a principal did; Athena's json_extract_scalar and from_iso8601_timestamp work too.
    The SQL cannot write or delete files: DuckDB's file access is off and its settings locked.
    With no query at a terminal, opens a prompt (history, multi-line statements up to ';', .mode,
    .maxrows).

    Example: analyzer sql "select principal, source_ip, count(*) from signins where outcome = 'Failure' group by all"
    """
    from analyzer.output.rows import output_format
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
    fmt = output_format(output, fmt) if output else fmt or OutputFormat.table
    if text is None and output is not None:
        raise UsageError("--output needs a query (argument, --file or stdin)", option="--output")
    if fmt is OutputFormat.parquet and output is None and stdout.file.isatty():  # before the dataset is opened
        raise UsageError("parquet is binary: give --output FILE or redirect standard output", option="--format")
    snapshot = read_committed(Layout(data)) if Layout(data).internal.exists() else None
    con = open_readonly(data, snapshot=snapshot)
    try:
        if text is None:
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


__all__ = ["OutputFormat", "default_max_rows", "emit", "render_table", "repl", "sql_command"]
