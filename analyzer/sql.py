"""Ad-hoc, read-only SQL over the dataset: what ``analyzer sql`` and notebooks run queries with.

Read-only is enforced by DuckDB itself, not by inspecting the SQL. :func:`open_readonly` builds
the usual ``events``/``events_all`` views (:func:`analyzer.store.connect`) and the investigation
views (:mod:`analyzer.store.views`), then:

1. *pins* the Parquet files the views read to Arrow datasets registered with the connection, so
   the views no longer name a path (pyarrow reads the files; it has no way to write them);
2. turns DuckDB's file system off (``enable_external_access = false``, with empty
   ``allowed_paths``/``allowed_directories``), and with it extension installing and loading;
3. locks the configuration (``lock_configuration = true``), so no statement can turn 2 back on.
   A few harmless settings stay changeable (:data:`ALLOWED_CONFIGS`: time zone, threads, memory).

Why pinning: DuckDB's allow lists grant writing as well as reading. With ``allowed_directories``
set to the dataset, ``COPY … TO 'DATA/event_date=…/x.parquet'`` adds files to it; with
``allowed_paths`` set to its files, ``COPY … TO '<one of them>' (USE_TMP_FILE false)`` overwrites
one and ``ATTACH`` opens one as a database. With no allow list at all, no SQL statement can open
any file: ``COPY … TO``, ``EXPORT DATABASE``, ``ATTACH 'file'``, ``INSTALL``/``LOAD``,
``read_text``/``read_blob``/``read_csv``/``glob`` and persistent secrets all fail with DuckDB's
"Permission Error". What remains possible is harmless: in-memory tables, views and macros of this
connection (``DROP VIEW events`` drops a name in memory, never a file).

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
import pyarrow.dataset as ds

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store.engine import connect
from analyzer.store.layout import Layout
from analyzer.store.views import install_views

#: Settings a read-only session may still change: none of them reaches a file.
ALLOWED_CONFIGS = (
    "TimeZone",
    "Calendar",
    "threads",
    "memory_limit",
    "default_order",
    "default_null_order",
    "preserve_insertion_order",
)

#: Applied in order; the last one makes every earlier one permanent for the connection.
LOCKDOWN = (
    "set python_enable_replacements = false",  # no reading Python variables by name
    "set autoinstall_known_extensions = false",
    "set autoload_known_extensions = false",
    "set allow_community_extensions = false",
    "set allowed_paths = []",
    "set allowed_directories = []",
    "set enable_external_access = false",
    "set allowed_configs = [" + ", ".join(f"'{name}'" for name in ALLOWED_CONFIGS) + "]",
    "set lock_configuration = true",
)

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

EVENTS_SCHEMA = SCHEMA.append(pa.field(PARTITION_COLUMN, pa.date32()))
DUPLICATES_SCHEMA = pa.schema([pa.field("source_object", pa.string()), pa.field("record_index", pa.int32())])

# read_parquet('<path>', (option = value), ...) as DuckDB prints a view's definition
_READ_PARQUET = re.compile(r"read_parquet\('((?:[^']|'')*)'((?:\s*,\s*\(\w+\s*=\s*\w+\))*)\)", re.IGNORECASE)
_FILE_READERS = re.compile(
    r"\b(read_parquet|parquet_scan|read_csv\w*|read_json\w*|read_text|read_blob|glob)\s*\(", re.IGNORECASE
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


# C0/C1 controls but the line break, DEL, bidirectional overrides and zero-width characters
_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``): safe on a terminal.

    Log values are attacker-chosen (a failed sign-in records whatever user name was typed), and
    an investigator needs to *see* an escape sequence, not have the terminal obey or drop it.
    Line breaks are kept (DuckDB's messages use them); table cells escape them separately.
    """
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _message(exc: BaseException) -> str:
    """DuckDB's message (it can quote data values) made safe to print."""
    return visible(str(exc).strip()) or type(exc).__name__


def _events_dataset(layout: Layout) -> ds.Dataset:
    files = sorted(str(p) for p in layout.root.glob(f"{PARTITION_COLUMN}=*/*.parquet"))
    partitioning = ds.partitioning(pa.schema([pa.field(PARTITION_COLUMN, pa.date32())]), flavor="hive")
    return ds.dataset(
        files, schema=EVENTS_SCHEMA, format="parquet", partitioning=partitioning, partition_base_dir=str(layout.root)
    )


def _duplicates_dataset(layout: Layout) -> ds.Dataset:
    files = sorted(str(p) for p in layout.duplicates.glob("*.parquet"))
    return ds.dataset(files, schema=DUPLICATES_SCHEMA, format="parquet")


def pin_files(con: duckdb.DuckDBPyConnection, layout: Layout) -> None:
    """Point the views that read the dataset's Parquet by path at Arrow datasets of those files.

    Only the two sources the engine creates are known (the data glob and the duplicate index);
    a view reading any other file makes this raise, rather than fail later with a permission error.
    """
    known = {
        layout.data_glob(): ("_readonly_events", _events_dataset),
        str(layout.duplicates / "*.parquet"): ("_readonly_duplicates", _duplicates_dataset),
    }
    registered: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        path = match.group(1).replace("''", "'")
        if path not in known:
            return match.group(0)
        name, build = known[path]
        if name not in registered:
            con.register(name, build(layout))
            registered.add(name)
        return name

    views = con.execute("select view_name, sql from duckdb_views() where not internal").fetchall()
    for _name, sql in views:
        pinned = _READ_PARQUET.sub(replace, sql)
        if pinned != sql:
            con.execute(re.sub(r"^\s*create\s+view", "create or replace view", pinned, count=1, flags=re.I))
    for name, sql in con.execute("select view_name, sql from duckdb_views() where not internal").fetchall():
        if _FILE_READERS.search(sql):
            raise AnalyzerError(f"view {name} reads files by path; cannot open it read-only")


def lock_down(con: duckdb.DuckDBPyConnection, layout: Layout | None = None) -> duckdb.DuckDBPyConnection:
    """Make ``con`` read-only for good: pin the dataset's files, switch off file access, lock."""
    if layout is not None:
        pin_files(con, layout)
    con.execute("set TimeZone = 'UTC'")  # CloudTrail times are UTC; `event_date` is a UTC date
    for statement in LOCKDOWN:
        con.execute(statement)
    return con


def open_readonly(
    data: Path | str | None = None,
    *,
    table: pa.Table | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection with ``events``, ``events_all`` and the investigation views.

    ``data`` is a dataset directory; ``table`` rows in the canonical schema (tests, notebooks).
    """
    con = connect(data, table=table, memory_limit=memory_limit, threads=threads)
    install_views(con)
    return lock_down(con, Layout(Path(data)) if data is not None and table is None else None)


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


def query_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pa.Table:
    """All rows of the last statement of ``sql`` as a pyarrow Table."""
    result = execute(con, sql, params)
    return pa.Table.from_batches(list(result.batches()), schema=result.reader.schema)


def query_polars(con: duckdb.DuckDBPyConnection, sql: str, params: Params = None) -> pl.DataFrame:
    """All rows of the last statement of ``sql`` as a Polars DataFrame."""
    frame = pl.from_arrow(query_arrow(con, sql, params))
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


def run(sql: str, data: Path | str) -> pa.Table:
    """One read-only query against a dataset directory (opens and closes its own connection)."""
    con = open_readonly(data)
    try:
        return query_arrow(con, sql)
    finally:
        con.close()
