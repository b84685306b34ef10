"""DuckDB over the dataset: the ``events`` view every query reads.

``events`` is deduplicated on ``eventID`` (see :mod:`analyzer.store.dedup`); ``events_all`` keeps
every delivered row. Both carry ``event_date`` (the Hive partition), so a time window prunes
whole partitions before any file is opened.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing, suppress
from pathlib import Path

import duckdb
import pyarrow as pa

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store.layout import Layout
from analyzer.store.views import install_views

#: Deduplication without the index (slower: every query pays for it); rows without an eventID stay.
DEDUP_BY_WINDOW = (
    "select * from events_all qualify row_number() over ("
    "partition by coalesce(eventID, source_object || '#' || record_index) "
    "order by source_object, record_index) = 1"
)


def _has_stale_partitions(layout: Layout) -> bool:
    with closing(sqlite3.connect(f"file:{layout.manifest}?mode=ro", uri=True)) as db:
        try:
            return db.execute("select count(*) from stale_partitions").fetchone()[0] > 0
        except sqlite3.OperationalError:
            return False


def silence_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB draws its progress bar on stdout, even into a pipe; Jupyter refuses the setting."""
    with suppress(duckdb.InvalidInputException):
        con.execute("set enable_progress_bar = false")


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def connect(
    data: Path | str | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    table: pa.Table | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``events_all`` views.

    Pass ``data`` (a dataset directory) or ``table`` (rows in the canonical schema plus
    ``event_date``, as :func:`analyzer.ingest.build_table` makes them: for tests and notebooks).
    """
    con = con or duckdb.connect()
    con.execute("set TimeZone = 'UTC'")  # CloudTrail times are UTC; naive literals must be read as UTC too
    silence_progress_bar(con)
    if memory_limit:
        con.execute(f"set memory_limit = {_quote(memory_limit)}")
    if threads:
        con.execute(f"set threads = {int(threads)}")
    if table is not None:
        con.register("_events_table", table)
        con.execute("create or replace view events_all as select * from _events_table")
        con.execute(f"create or replace view events as {DEDUP_BY_WINDOW}")
        install_views(con)
        return con
    if data is None:
        raise AnalyzerError("connect() needs a dataset directory or a table")
    layout = Layout(Path(data))
    if not layout.internal.exists():
        raise AnalyzerError(f"{data}: no analyzer dataset here (run `analyzer ingest` first)")
    if any(layout.root.glob(f"{PARTITION_COLUMN}=*/*.parquet")):
        source = f"read_parquet({_quote(layout.data_glob())}, hive_partitioning = true)"
    else:
        empty = SCHEMA.empty_table().append_column(PARTITION_COLUMN, pa.array([], pa.date32()))
        con.register("_events_empty", empty)
        source = "_events_empty"
    con.execute(f"create or replace view events_all as select * from {source}")  # noqa: S608 - our paths, quoted
    if _has_stale_partitions(layout):  # an ingest died before indexing its duplicates
        con.execute(f"create or replace view events as {DEDUP_BY_WINDOW}")
    elif any(layout.duplicates.glob("*.parquet")):
        dups = f"read_parquet({_quote(str(layout.duplicates / '*.parquet'))})"
        view = f"select e.* from events_all e anti join {dups} d using (source_object, record_index)"  # noqa: S608
        con.execute(f"create or replace view events as {view}")
    else:
        con.execute("create or replace view events as select * from events_all")
    install_views(con)
    return con
