"""DuckDB over the dataset: the ``events`` view every query reads.

``events`` shows each event once (a second delivery of the same event is hidden, see
:mod:`analyzer.store.dedup`); ``events_all`` keeps every delivered row of the live object versions;
``events_superseded`` keeps the rows of log objects that were rewritten with other content, as
evidence (see :mod:`analyzer.store.versions`). They carry ``event_date`` (the Hive partition), so a
time window prunes whole partitions before any file is opened.

They read the committed snapshot (:mod:`analyzer.store.snapshot`): the live files the manifest lists
when the connection opens, passed to DuckDB as a list, never a glob, so a reader never sees part of
a batch or a day twice. :func:`read_snapshot` runs a piece of work again, once, on the new snapshot
when a writer retired (and deleted) a file of the old one while it ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store import snapshot as snapshots
from analyzer.store.dedup import IDENTITY_SQL, decode_losers
from analyzer.store.layout import Layout
from analyzer.store.sandbox import seal
from analyzer.store.snapshot import EVIDENCE, Snapshot
from analyzer.store.views import install_views

log = logging.getLogger("analyzer.store")
T = TypeVar("T")

#: Deduplication without the index (slower: every query pays for it); rows without an eventID stay.
DEDUP_BY_WINDOW = (
    "select * from events_all qualify eventID is null or row_number() over ("  # noqa: S608 - constants
    f"partition by {IDENTITY_SQL} order by source_object, record_index) = 1"
)


def _duplicate_index(layout: Layout, snapshot: Snapshot) -> pa.Table | None:
    """The duplicate index committed with the snapshot, or None when it cannot be trusted (an ingest
    died before indexing a day, or the dataset still has the index of an older version) and events
    must be deduplicated by a window instead."""
    if snapshot.index_stale or any(layout.legacy_duplicates.glob("*.parquet")):
        return None
    tables = [decode_losers(blob) for blob in snapshot.duplicates]
    schema = pa.schema([("source_object", pa.string()), ("record_index", pa.int64())])
    return pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()


def _install_superseded(con: duckdb.DuckDBPyConnection, files: list[str], table: pa.Table | None = None) -> None:
    """``events_superseded``: rows of the older versions of rewritten log objects (evidence), with
    ``superseded_by`` (the batch that brought the new version) and ``superseded_at``."""
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
    snapshot: Snapshot | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``events_all`` views, sealed (no file access but
    the dataset's files, settings locked: :mod:`analyzer.store.sandbox`; ``arrow``: pyarrow reads
    the files and DuckDB none, for ad-hoc SQL).

    Pass ``data`` (a dataset directory) or ``table`` (rows in the canonical schema plus
    ``event_date``, as :func:`analyzer.ingest.build_table` makes them: for tests and notebooks);
    with ``table``, ``superseded`` holds rows of replaced object versions (plus ``superseded_by``
    and ``superseded_at``) for ``events_superseded``. With ``data``, the views read the committed
    snapshot (``snapshot``, or the one committed now).
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
        _install_superseded(con, [], superseded)
        install_views(con)
        return seal(con)  # every query on the user's behalf runs sealed (analyzer/store/sandbox.py)
    if data is None:
        raise AnalyzerError("connect() needs a dataset directory or a table")
    layout = Layout(Path(data))
    if not layout.internal.exists():
        raise AnalyzerError(f"{data}: no analyzer dataset here (run `analyzer ingest` first)")
    snapshot = snapshot or snapshots.read(layout)
    files = snapshot.paths()
    if files:  # the committed files, listed: never a glob, which would see what a writer has not committed
        source = f"read_parquet([{', '.join(map(_quote, files))}], hive_partitioning = true)"
    else:
        empty = SCHEMA.empty_table().append_column(PARTITION_COLUMN, pa.array([], pa.date32()))
        con.register("_events_empty", empty)
        source = "_events_empty"
    con.execute(f"create or replace view events_all as select * from {source}")  # noqa: S608 - our paths, quoted
    duplicates = _duplicate_index(layout, snapshot)
    if duplicates is None:
        con.execute(f"create or replace view events as {DEDUP_BY_WINDOW}")
    elif duplicates.num_rows:
        con.register("_events_duplicates", duplicates)
        con.execute("create or replace view events as select e.* from events_all e"
                    " anti join _events_duplicates d using (source_object, record_index)")
    else:
        con.execute("create or replace view events as select * from events_all")
    _install_superseded(con, snapshot.paths(EVIDENCE))
    install_views(con)
    return seal(con, layout.root, arrow=arrow)  # queries on the user's behalf run sealed (analyzer/store/sandbox.py)


def read_snapshot(data: Path | str, work: Callable[[duckdb.DuckDBPyConnection], T], **options: Any) -> T:
    """``work(con)`` on a connection to the committed snapshot (``options`` go to :func:`connect`),
    closed after. Should it fail while a writer retired a file of that snapshot (a compaction or a
    rewrite committed and deleted it: DuckDB's IO error for a missing file), it runs once more on
    the new snapshot."""
    layout = Layout(Path(data))
    for attempt in (1, 2):
        snapshot = snapshots.read(layout) if layout.internal.exists() else None
        con = connect(data, snapshot=snapshot, **options)
        try:
            return work(con)
        except Exception:
            if attempt == 2 or snapshot is None or not snapshot.retired():
                raise
            log.info("%s: a writer replaced files while they were read: reading the new snapshot", data)
        finally:
            con.close()
    raise AssertionError("unreachable")
