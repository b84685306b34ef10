"""Posture snapshots kept in the dataset, dated, so that posture has a history.

A snapshot is one Parquet file, ``DATA/_analyzer/posture/posture-<taken>-<id>-<YYYY-MM-DD>.posture``,
committed like every other file of the dataset: written under ``_analyzer/tmp/`` as ``*.staged``,
recorded as a pending batch, renamed into place, and made part of the dataset by one SQLite
transaction that adds it to the manifest's ``files`` table with the kind ``posture``
(:mod:`analyzer.store.snapshot`). A reader lists the committed files, never a folder, so a snapshot
a crash interrupted is never read, and the next writer removes it. The folder is under
``_analyzer/`` and the suffix is not ``.parquet``: ``DATA/**/*.parquet`` (the README's read recipes,
Spark, Athena) finds the events and nothing else, and ``connect()``'s views never see posture rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.errors import AnalyzerError
from analyzer.posture.model import SCHEMA, conform
from analyzer.store import snapshot as snapshots
from analyzer.store.dataset import Dataset, crash_point, fsync_path, new_batch_id
from analyzer.store.layout import Layout
from analyzer.store.snapshot import STAGED_SUFFIX, DataFile

#: The kind of a posture snapshot in the manifest's ``files`` table (beside ``data`` and ``evidence``).
POSTURE = "posture"
FOLDER = "posture"  # under DATA/_analyzer/
SUFFIX = ".posture"


@dataclass(frozen=True)
class StoredSnapshot:
    """A committed snapshot: its file (relative to the dataset) and when it was taken."""

    path: str
    day: str
    taken_at: str  # ISO 8601, from the manifest
    rows: int


def file_name(snapshot_id: str, taken_at: datetime) -> str:
    return f"posture-{taken_at:%Y%m%dT%H%M%SZ}-{snapshot_id}-{taken_at:%Y-%m-%d}{SUFFIX}"


def _taken_at(table: pa.Table) -> datetime:
    if table.num_rows == 0:
        raise AnalyzerError("an empty posture snapshot (no account) is not stored")
    value = pc.min(table["taken_at"]).as_py()
    if not isinstance(value, datetime):
        raise AnalyzerError("a posture snapshot without its time is not stored")
    return value


def save(data: Path | str, table: pa.Table) -> Path:
    """Commit ``table`` (:data:`~analyzer.posture.model.SCHEMA`) into the dataset at ``data`` as one
    snapshot; returns its path. Takes the dataset's writer lock (another writer running: an error)."""
    table = conform(table)
    taken_at = _taken_at(table)
    snapshot_id = str(table["snapshot_id"][0].as_py())
    with Dataset(data) as dataset:
        dataset.lock()
        layout = dataset.layout
        batch = new_batch_id()
        staged = dataset.tmp_dir(batch) / f"{file_name(snapshot_id, taken_at)}{STAGED_SUFFIX}"
        staged.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, staged, compression="zstd")
        final = layout.internal / FOLDER / file_name(snapshot_id, taken_at)
        relative = str(final.relative_to(layout.root))
        moment = taken_at.isoformat(timespec="microseconds")
        added = DataFile(relative, f"{taken_at:%Y-%m-%d}", table.num_rows, moment, moment, POSTURE)
        dataset.manifest.begin_batch(batch, [relative])
        fsync_path(staged)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)  # in place, but no reader lists it before the commit
            fsync_path(final.parent)
            crash_point("posture.moved")
            dataset.manifest.commit_batch(batch, [], [], added=[added])
        except Exception:
            dataset.roll_back(batch, [final])
            raise
        crash_point("posture.committed")
        shutil.rmtree(dataset.tmp_dir(batch), ignore_errors=True)
    return final


def stored(data: Path | str) -> list[StoredSnapshot]:
    """The committed snapshots, oldest first (none when ``data`` is no dataset yet)."""
    layout = Layout(Path(data))
    if not layout.internal.exists():
        return []
    files = [f for f in snapshots.read(layout).files if f.kind == POSTURE]
    return sorted(
        (StoredSnapshot(f.path, f.day, f.min_time or "", f.rows) for f in files), key=lambda s: (s.taken_at, s.path)
    )


def load(data: Path | str, snapshot: StoredSnapshot, columns: Sequence[str] | None = None) -> pa.Table:
    """One stored snapshot in today's schema (``columns``: only these, and only they are read)."""
    path = Path(data) / snapshot.path
    try:
        present = set(pq.read_schema(path).names)
        wanted = [c for c in columns if c in present] if columns is not None else None
        table = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise AnalyzerError(f"{path}: cannot read the posture snapshot: {exc}") from exc
    return conform(table, columns)


def history(data: Path | str, columns: Sequence[str]) -> tuple[pa.Table, list[str]]:
    """Every stored snapshot's ``columns``, oldest first, and a line per snapshot that could not be read."""
    tables: list[pa.Table] = []
    problems: list[str] = []
    for snapshot in stored(data):
        try:
            tables.append(load(data, snapshot, columns))
        except AnalyzerError as exc:
            problems.append(str(exc))
    if not tables:
        return SCHEMA.empty_table().select(list(columns)), problems
    return pa.concat_tables(tables), problems


def latest(data: Path | str) -> pa.Table | None:
    """The newest stored snapshot, or None."""
    found = stored(data)
    return load(data, found[-1]) if found else None
