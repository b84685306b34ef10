"""Ad-hoc, read-only SQL over the dataset: what ``analyzer sql`` and notebooks run queries with.

Read-only is enforced by DuckDB itself, not by inspecting the SQL: :func:`open_readonly` is
:func:`analyzer.store.connect`, whose connection is sealed by :mod:`analyzer.store.sandbox`
(the ``events`` views and the investigation views, then):

the views read only the files pinned when it was opened, DuckDB's file system, extensions and
temporary directory are off, and the configuration (memory and thread caps included) is locked.
No SQL statement can open any file: ``COPY … TO``, ``EXPORT DATABASE``, ``ATTACH 'file'``,
``INSTALL``/``LOAD``, ``read_text``/``read_blob``/``read_csv``/``glob`` and persistent secrets all
fail with DuckDB's "Permission Error". What remains possible is harmless: in-memory tables, views
and macros of this connection (``DROP VIEW events`` drops a name in memory, never a file).
``timeout`` bounds a query's time (:class:`QueryTimeout`).

The connection is a snapshot: the files present when it was opened (a new ingest needs a new
connection). Library functions raise :class:`QueryError` (an :class:`AnalyzerError`) with
DuckDB's message, which names the line and marks the position with a caret when DuckDB knows it.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from analyzer.alerts import sanitize
from analyzer.errors import AnalyzerError
from analyzer.store.engine import connect
from analyzer.store.sandbox import QueryTimeout as QueryTimeout
from analyzer.store.sandbox import SandboxError, allows_paths, check_statements, time_limit
from analyzer.store.snapshot import Snapshot

#: Statement types whose result is rows worth showing (the others report a count or nothing).
ROW_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
        duckdb.StatementType.CALL,
        duckdb.StatementType.EXECUTE,
        duckdb.StatementType.INSERT,
        duckdb.StatementType.UPDATE,
        duckdb.StatementType.DELETE,
    }
)

Params = dict[str, Any] | None


class QueryError(AnalyzerError):
    """A statement DuckDB refused or failed: its message, with LINE and a caret when known."""


@dataclass
class Result:
    """The rows of the last statement, streamed; ``shows_rows`` is False for DDL, SET, COPY…."""

    reader: pa.RecordBatchReader
    statement_type: duckdb.StatementType
    line_offset: int = 0  # blank lines before the SQL, which DuckDB's LINE numbers leave out

    @property
    def shows_rows(self) -> bool:
        return self.statement_type in ROW_STATEMENTS

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The record batches; a failure while they are produced is a :class:`QueryError`."""
        try:
            yield from self.reader
        except (duckdb.Error, pa.ArrowException) as exc:
            raise QueryError(_shift_lines(_message(exc), self.line_offset)) from exc


def visible(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``): safe on a terminal.

    Log values are attacker-chosen (a failed sign-in records whatever user name was typed), and
    an investigator needs to *see* an escape sequence, not have the terminal obey or drop it.
    Line breaks are kept (DuckDB's messages use them); table cells escape them separately.
    """
    return sanitize.visible(text, keep_newlines=True)


def _message(exc: BaseException) -> str:
    """DuckDB's message (it can quote data values) made safe to print."""
    return visible(str(exc).strip()) or type(exc).__name__


def open_readonly(
    data: Path | str | None = None,
    *,
    table: pa.Table | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    snapshot: Snapshot | None = None,
) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection with ``events``, ``events_all`` and the investigation views.

    ``data`` is a dataset directory (read as its committed ``snapshot``, by default the current one);
    ``table`` rows in the canonical schema (tests, notebooks).
    """
    return connect(data, table=table, memory_limit=memory_limit, threads=threads, arrow=True,  # sealed, with views
                   snapshot=snapshot)


def statement_complete(text: str) -> bool:
    """True when ``text`` ends with a ``;`` outside quotes and comments: a prompt can run it.

    A small scanner, not a parser: it only has to know where a statement may end, so that a
    ``;`` inside ``'…'``, ``"…"``, ``$$…$$``, ``-- …`` or ``/* … */`` does not end one.
    """
    i, n = 0, len(text)
    last = ""
    while i < n:
        c = text[i]
        if c in ("'", '"'):
            end = text.find(c, i + 1)
            while end != -1 and text.startswith(c, end + 1):  # '' and "" escape themselves
                end = text.find(c, end + 2)
            if end == -1:
                return False
            i, last = end + 1, c
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                return False
            i = end + 2
        elif c == "$" and (match := re.match(r"\$(\w*)\$", text[i:])) and not text[i - 1 : i].isalnum():
            tag = match.group(0)
            end = text.find(tag, i + len(tag))
            if end == -1:
                return False
            i, last = end + len(tag), "$"
        else:
            if not c.isspace():
                last = c
            i += 1
    return last == ";"


def _blanked(prefix: str) -> str:
    """``prefix`` with everything but its line breaks blanked: positions after it stay where they were."""
    return re.sub(r"[^\n]", " ", prefix)


def _commented(prefix: str) -> str | None:
    """``prefix`` as one comment of the same shape, or None when it has no room for ``/*``…``*/``.

    The relation API strips leading blanks before it reports a position, but not a comment.
    """
    if not prefix:
        return ""
    blank = _blanked(prefix)
    close = max((m.end() for m in re.finditer(r"[^\n]{2}", blank[2:])), default=0) + 2
    if "\n" in prefix[:2] or close < 4:
        return None
    return "/*" + blank[2 : close - 2] + "*/" + blank[close:]


def _shift_lines(message: str, lines: int) -> str:
    """DuckDB's ``LINE n:`` moved down by ``lines``, its caret line kept under the same character."""
    if not lines:
        return message
    out = message.split("\n")
    for i, line in enumerate(out):
        if match := re.match(r"LINE (\d+):", line):
            label = f"LINE {int(match.group(1)) + lines}:"
            out[i] = label + line[match.end() :]
            if i + 1 < len(out):
                out[i + 1] = " " * (len(label) - len(match.group(0))) + out[i + 1]
    return "\n".join(out)


class _Script:
    """The statements of one SQL text, and how to run each so its errors point into that text.

    Each statement runs preceded by a stand-in for the text before it, so DuckDB's LINE and caret
    refer to the text as given. Leading blank lines are counted apart: DuckDB drops them.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        self.con = con
        self.body = sql.lstrip()
        self.lead = sql[: len(sql) - len(self.body)].count("\n")
        try:
            statements = con.extract_statements(self.body)
        except duckdb.Error as exc:
            raise self.error(exc) from exc
        if not statements:
            raise QueryError("no SQL statement to run")
        if allows_paths(con):  # a connection that may read the dataset's files natively must not write them
            try:
                check_statements(con, self.body)
            except SandboxError as exc:
                raise QueryError(str(exc)) from exc
        self.statements: list[tuple[int, duckdb.Statement]] = []
        start = 0
        for statement in statements:
            self.statements.append((start, statement))
            start += len(statement.query)

    def error(self, exc: BaseException) -> QueryError:
        return QueryError(_shift_lines(_message(exc), self.lead))

    def complete(self, start: int, statement: duckdb.Statement) -> None:
        """Run a statement whose rows nobody will see (DB-API: it keeps positions, needs no Arrow)."""
        try:
            self.con.execute(_blanked(self.body[:start]) + statement.query)
            self.con.complete()
        except duckdb.Error as exc:
            raise self.error(exc) from exc

    def stream(self, start: int, statement: duckdb.Statement, params: Params, batch_size: int) -> Result:
        """Run a statement for its rows: the relation API streams them (the DB-API copies them all)."""
        query = statement.query.lstrip()
        begin = start + len(statement.query) - len(query)
        blank = _blanked(self.body[:begin]) + query
        prefix = _commented(self.body[:begin])  # the relation API strips leading blanks, not comments
        try:
            relation = self.con.sql(blank if prefix is None else prefix + query, params=params)
        except duckdb.Error as exc:
            error: BaseException = exc
            if "LINE " not in _message(exc) and statement.type == duckdb.StatementType.SELECT:
                try:  # the relation API drops binder positions; binding again the DB-API way has them
                    self.con.execute(blank, params)
                except duckdb.Error as positioned:
                    error = positioned
            raise self.error(error) from exc
        if relation is None:
            return Result(pa.RecordBatchReader.from_batches(pa.schema([]), []), statement.type, self.lead)
        try:
            return Result(relation.to_arrow_reader(batch_size), statement.type, self.lead)
        except duckdb.Error as exc:
            raise self.error(exc) from exc


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None, *, batch_size: int = 8192
) -> Result:
    """Run every statement of ``sql``; return the last one's rows as a stream.

    ``params`` (``$name`` placeholders) are bound in the last statement: values never become SQL text.
    Errors are :class:`QueryError` with DuckDB's LINE and caret pointing into ``sql`` as given.
    """
    script = _Script(con, sql)
    for start, statement in script.statements[:-1]:
        script.complete(start, statement)
    return script.stream(*script.statements[-1], params, batch_size)


def execute_each(
    con: duckdb.DuckDBPyConnection, sql: str, *, batch_size: int = 8192
) -> Generator[Result, None, None]:
    """Run the statements of ``sql`` one at a time, yielding each one's rows (what a prompt shows).

    A statement runs when the next result is asked for; rows of the previous one not read by then
    are dropped (DuckDB serves one open result per connection).
    """
    script = _Script(con, sql)
    for start, statement in script.statements:
        result = script.stream(start, statement, None, batch_size)
        try:
            yield result
        finally:
            result.reader.close()


def query_arrow(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None, *, timeout: float | None = None
) -> pa.Table:
    """All rows of the last statement of ``sql`` as a pyarrow Table, within ``timeout`` seconds."""
    with time_limit(con, timeout):
        result = execute(con, sql, params)
        return pa.Table.from_batches(list(result.batches()), schema=result.reader.schema)


def query_polars(
    con: duckdb.DuckDBPyConnection, sql: str, params: Params = None, *, timeout: float | None = None
) -> pl.DataFrame:
    """All rows of the last statement of ``sql`` as a Polars DataFrame, within ``timeout`` seconds."""
    frame = pl.from_arrow(query_arrow(con, sql, params, timeout=timeout))
    assert isinstance(frame, pl.DataFrame)
    return frame


def timeline(
    con: duckdb.DuckDBPyConnection,
    who: str,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pl.DataFrame:
    """Everything ``who`` (an ARN, role ARN, user name, access key id…) did in ``[since, until)``.

    The ``principal_timeline`` macro as a frame: the pivot from an alert to the activity around it.
    """
    if not who:
        raise AnalyzerError("timeline() needs a principal (an alert on a hidden user name has none)")
    return query_polars(
        con,
        "select * from principal_timeline($who, since := $since, until := $until)",
        {"who": who, "since": since, "until": until},
    )


def run(sql: str, data: Path | str, *, timeout: float | None = None) -> pa.Table:
    """One read-only query against a dataset directory (opens and closes its own connection);
    ``timeout`` seconds bound its time (:class:`~analyzer.store.sandbox.QueryTimeout`)."""
    con = open_readonly(data)
    try:
        return query_arrow(con, sql, timeout=timeout)
    finally:
        con.close()
