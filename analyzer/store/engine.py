"""DuckDB over the dataset: the ``events`` view every query reads.

``events`` shows each event once (a second delivery of the same event is hidden, see
:mod:`analyzer.store.dedup`); ``events_all`` keeps every delivered row of the live object versions;
``events_superseded`` keeps the rows of log objects that were rewritten with other content, as
evidence (see :mod:`analyzer.store.versions`). They carry ``event_date`` (the Hive partition), so a
time window prunes whole partitions before any file is opened.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing, suppress
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store.dedup import IDENTITY_SQL, decode_losers
from analyzer.store.layout import Layout
from analyzer.store.sandbox import seal
from analyzer.store.versions import EVIDENCE_SUFFIX, superseded_dir
from analyzer.store.views import install_views

#: Deduplication without the index (slower: every query pays for it); rows without an eventID stay.
DEDUP_BY_WINDOW = (
    "select * from events_all qualify eventID is null or row_number() over ("  # noqa: S608 - constants
    f"partition by {IDENTITY_SQL} order by source_object, record_index) = 1"
)


def _duplicate_index(layout: Layout) -> pa.Table | None:
    """The committed duplicate index, or None when it cannot be trusted (an ingest died before
    indexing a day, or the dataset still has the index of an older version) and events must be
    deduplicated by a window instead."""
    if any(layout.duplicates.glob("*.parquet")):
        return None
    with closing(sqlite3.connect(f"file:{layout.manifest}?mode=ro", uri=True)) as db:
        try:
            db.execute("begin")  # one read snapshot of the stale marks and the index
            if db.execute("select count(*) from stale_partitions").fetchone()[0] > 0:
                return None
            blobs = [row[0] for row in db.execute("select losers from duplicates order by event_date")]
        except sqlite3.OperationalError:  # an older manifest without the table: its index is the files
            return None
    tables = [decode_losers(blob) for blob in blobs]
    schema = pa.schema([("source_object", pa.string()), ("record_index", pa.int64())])
    return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()


def _install_superseded(con: duckdb.DuckDBPyConnection, layout: Layout | None, table: pa.Table | None = None) -> None:
    """``events_superseded``: rows of the older versions of rewritten log objects (evidence), with
    ``superseded_by`` (the batch that brought the new version) and ``superseded_at``."""
    files = sorted(str(p) for p in superseded_dir(layout).glob(f"*{EVIDENCE_SUFFIX}")) if layout else []
    if table is not None:
        con.register("_events_superseded", table)
        con.execute("create or replace view events_superseded as select * from _events_superseded")
    elif files:
        con.register("_events_superseded", ds.dataset(files, format="parquet"))
        con.execute("create or replace view events_superseded as select * from _events_superseded")
    else:
        con.execute("create or replace view events_superseded as select *, null::varchar as superseded_by,"
                    " null::timestamptz as superseded_at from events_all where false")


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
    superseded: pa.Table | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    arrow: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``events_all`` views, sealed (no file access but
    the dataset's files, settings locked: :mod:`analyzer.store.sandbox`; ``arrow``: pyarrow reads
    the files and DuckDB none, for ad-hoc SQL).

    Pass ``data`` (a dataset directory) or ``table`` (rows in the canonical schema plus
    ``event_date``, as :func:`analyzer.ingest.build_table` makes them: for tests and notebooks);
    with ``table``, ``superseded`` holds rows of replaced object versions (plus ``superseded_by``
    and ``superseded_at``) for ``events_superseded``.
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
        _install_superseded(con, None, superseded)
        install_views(con)
        return seal(con)  # every query on the user's behalf runs sealed (analyzer/store/sandbox.py)
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
    duplicates = _duplicate_index(layout)
    if duplicates is None:
        con.execute(f"create or replace view events as {DEDUP_BY_WINDOW}")
    elif duplicates.num_rows:
        con.register("_events_duplicates", duplicates)
        con.execute("create or replace view events as select e.* from events_all e"
                    " anti join _events_duplicates d using (source_object, record_index)")
    else:
        con.execute("create or replace view events as select * from events_all")
    _install_superseded(con, layout)
    install_views(con)
    return seal(con, layout.root, arrow=arrow)  # queries on the user's behalf run sealed (analyzer/store/sandbox.py)
