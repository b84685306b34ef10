"""The committed snapshot: the live files of a dataset, as the manifest lists them.

The manifest's ``files`` table is the dataset, as Delta Lake's log or an Iceberg snapshot is: a
file is part of it from the SQLite transaction that adds it (a batch, a compaction, a rewrite) to
the one that retires it, and every reader (``connect()``, so ``analyzer sql``, ``detect``,
``nightly`` and the notebooks) reads exactly that list, passed to DuckDB file by file, never a
glob. A writer renames a file into its partition *before* the commit that adds it, and deletes a
retired one only *after* the commit that retires it, so an analyzer reader never sees part of a
batch or a day twice, at any kill point; a plain glob over the folders is consistent only between
writes (see the README).

A dataset written before the table existed is adopted once, by its first writer or reader
(:func:`adopt`): the files on disk, less those a crashed writer had not committed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.request import pathname2url

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.schema import PARTITION_COLUMN
from analyzer.store.layout import Layout

log = logging.getLogger("analyzer.store")

#: The state key saying the ``files`` table is the dataset (set by :func:`adopt`, or at creation).
ADOPTED = "manifest.snapshot"
DATA, EVIDENCE = "data", "evidence"
#: The suffix of a file written but not yet committed: no ``*.parquet`` glob matches it.
STAGED_SUFFIX = ".staged"
EVIDENCE_SUFFIX = ".evidence"
TIME_COLUMN = "eventTime"


@dataclass(frozen=True)
class DataFile:
    """One file of the snapshot: ``path`` relative to the dataset root."""

    path: str
    day: str
    rows: int
    min_time: str | None = None
    max_time: str | None = None
    kind: str = DATA


@dataclass(frozen=True)
class Snapshot:
    """What one reader reads: the live files, and the duplicate index committed with them."""

    root: Path
    files: tuple[DataFile, ...]
    duplicates: tuple[bytes, ...] = ()
    index_stale: bool = True  # some day's duplicate index is not up to date: deduplicate by a window

    def paths(self, kind: str = DATA) -> list[str]:
        return [str(self.root / f.path) for f in self.files if f.kind == kind]

    def retired(self) -> bool:
        """True when a file of this snapshot is gone: a writer committed a newer one since."""
        return any(not (self.root / f.path).exists() for f in self.files)


def time_range(column: pa.ChunkedArray | pa.Array) -> tuple[str | None, str | None]:
    """The first and last ``eventTime`` of a file's rows, ISO 8601 (vectorised: no per-row cost)."""
    if len(column) == 0:
        return None, None
    bounds = pc.min_max(column)
    return _iso(bounds["min"].as_py()), _iso(bounds["max"].as_py())


def _iso(value: object) -> str | None:
    return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else None


def describe(root: Path, path: Path, kind: str = DATA) -> DataFile:
    """A file on disk as the snapshot lists it, from its Parquet footer (rows, time statistics)."""
    metadata = pq.read_metadata(path)
    low: list[datetime] = []
    high: list[datetime] = []
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    if TIME_COLUMN in names:
        index = names.index(TIME_COLUMN)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max:
                low.append(stats.min)
                high.append(stats.max)
    relative = path.relative_to(root)
    day = _day_of(relative)
    return DataFile(str(relative), day, metadata.num_rows, _iso(min(low)) if low else None,
                    _iso(max(high)) if high else None, kind)


def _day_of(relative: Path) -> str:
    """The day partition a file belongs to: its folder, or for evidence the end of its name
    (``...-YYYY-MM-DD.evidence``)."""
    for part in relative.parts:
        if part.startswith(f"{PARTITION_COLUMN}="):
            return part.split("=", 1)[1]
    parts = relative.name.removesuffix(EVIDENCE_SUFFIX).split("-")
    return "-".join(parts[-3:]) if len(parts) >= 3 else ""


def files_on_disk(layout: Layout) -> list[Path]:
    """Every data and evidence file on disk (what an older dataset's readers read)."""
    data = sorted(layout.root.glob(f"{PARTITION_COLUMN}=*/*.parquet"))
    return data + sorted(layout.superseded.glob(f"*{EVIDENCE_SUFFIX}"))


def _uncommitted(db: sqlite3.Connection, root: Path) -> tuple[set[str], list[tuple[str, list[str]]]]:
    """What an older writer left: files of pending batches (never committed) and, per compaction
    whose output had been renamed into place (committed, in that version), the inputs it replaced."""
    pending: set[str] = set()
    retired: list[tuple[str, list[str]]] = []
    tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
    if "batches" in tables:
        for (files,) in db.execute("select files from batches where status='pending'"):
            pending.update(json.loads(files))
    if "compactions" in tables:
        for job, output, inputs in db.execute("select id, output, inputs from compactions"):
            if (root / output).exists():  # renamed into place: committed; else the inputs are the data
                retired.append((job, json.loads(inputs)))
    return pending, retired


def scan(layout: Layout, db: sqlite3.Connection | None) -> tuple[list[DataFile], list[tuple[str, str]]]:
    """An older dataset's snapshot from disk: (live files, (retired path, by whom) to remove)."""
    pending, compactions = _uncommitted(db, layout.root) if db is not None else (set(), [])
    root = layout.root
    replaced = {path: job for job, inputs in compactions for path in inputs}
    on_disk = files_on_disk(layout)
    live = [
        describe(root, path, EVIDENCE if path.name.endswith(EVIDENCE_SUFFIX) else DATA)
        for path in on_disk
        if str(path.relative_to(root)) not in pending and str(path.relative_to(root)) not in replaced
    ]
    present = {str(path.relative_to(root)) for path in on_disk}
    return live, [(path, job) for path, job in replaced.items() if path in present]


def adopt(db: sqlite3.Connection, layout: Layout) -> int | None:
    """Make the ``files`` table the dataset, once: from the files on disk for a dataset written
    before it existed (says so), or empty for a new one. Returns the files adopted, or None when
    the table already was the dataset."""
    if _adopted(db):
        return None
    live, retired = scan(layout, db)  # reading footers happens outside the write transaction
    db.execute("begin immediate")
    try:
        if _adopted(db):  # another process adopted it meanwhile
            db.execute("rollback")
            return None
        now = time.time()
        add_files(db, live, "adopted", now)
        db.executemany(
            "insert or replace into files(path, kind, event_date, rows, added_by, added_at, retired_by, retired_at)"
            " values (?, 'data', '', 0, 'adopted', ?, ?, ?)",
            [(path, now, job, now) for path, job in retired],
        )
        db.execute("delete from compactions")  # the older journal: its outcome is in the table now
        db.execute("insert or replace into state(key, value) values (?, '1')", (ADOPTED,))
        db.execute("commit")
    except BaseException:
        db.execute("rollback")
        raise
    if live or retired:
        log.warning("%s: an older dataset: the manifest now lists its %d live files (done once)",
                    layout.root, len(live))
    return len(live)


def _adopted(db: sqlite3.Connection) -> bool:
    row = db.execute("select value from state where key=?", (ADOPTED,)).fetchone()
    return row is not None


def add_files(db: sqlite3.Connection, files: Iterable[DataFile], by: str, now: float) -> None:
    db.executemany(
        "insert into files(path, kind, event_date, rows, min_time, max_time, added_by, added_at)"
        " values (?,?,?,?,?,?,?,?)",
        [(f.path, f.kind, f.day, f.rows, f.min_time, f.max_time, by, now) for f in files],
    )


def retire_files(db: sqlite3.Connection, paths: list[str], by: str, now: float) -> None:
    """Mark live files retired (inside the commit's transaction); raise if one is not live, so a
    commit never replaces what it did not read."""
    for path in paths:
        changed = db.execute("update files set retired_by=?, retired_at=? where path=? and retired_by is null",
                             (by, now, path)).rowcount
        if changed != 1:
            raise RuntimeError(f"{path} is not a live file of the dataset: not replaced")


def read(layout: Layout) -> Snapshot:
    """The committed snapshot, read in one SQLite read transaction (adopting an older dataset first,
    where the manifest can be written; in memory where it cannot)."""
    if not layout.manifest.exists():
        live, _ = scan(layout, None)
        return Snapshot(layout.root, tuple(live))
    with closing(sqlite3.connect(_read_only_uri(layout.manifest), uri=True, timeout=30)) as db:
        try:
            if _adopted(db):
                return _read(db, layout)
        except sqlite3.OperationalError:  # an older manifest, without the tables
            pass
    from analyzer.store.manifest import Manifest

    try:
        manifest = Manifest(layout.manifest)  # creates the tables an older manifest lacks
    except sqlite3.OperationalError:  # a read-only dataset: read it as it is, in memory
        with closing(sqlite3.connect(_read_only_uri(layout.manifest), uri=True)) as db:
            live, _ = scan(layout, db)
        return Snapshot(layout.root, tuple(live))
    try:
        adopt(manifest.db, layout)
        return _read(manifest.db, layout)
    finally:
        manifest.close()


def _read_only_uri(path: Path) -> str:
    return f"file:{pathname2url(str(path.absolute()))}?mode=ro"  # a '?' or '#' in the path stays a path


def _read(db: sqlite3.Connection, layout: Layout) -> Snapshot:
    db.execute("begin")  # one read snapshot of the files, the duplicate index and its stale marks
    try:
        files = tuple(
            DataFile(*row)
            for row in db.execute("select path, event_date, rows, min_time, max_time, kind from files"
                                  " where retired_by is null order by kind, event_date, path")
        )
        stale = db.execute("select count(*) from stale_partitions").fetchone()[0] > 0
        blobs = tuple(row[0] for row in db.execute("select losers from duplicates order by event_date"))
    finally:
        db.execute("rollback")
    return Snapshot(layout.root, files, blobs, stale)
