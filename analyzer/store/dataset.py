"""The Parquet dataset: atomic batch writes, commit through the manifest, crash recovery.

Writers (ingest workers) put files under ``_analyzer/tmp/<batch>/``, named ``*.parquet.staged``
(no ``*.parquet`` glob finds them); only the single committing process moves them into
``event_date=*/`` partitions, recorded first as a ``pending`` batch, and then commits them: one
SQLite transaction adds them to the manifest's live files (the snapshot every analyzer reader
reads, :mod:`analyzer.store.snapshot`), retires the files a rewrite replaced and records the
objects. Files retired by a commit are deleted after it. A batch interrupted before its commit is
rolled back on the next open, and retired files a crash left are deleted then, so a rerun
re-ingests its objects exactly once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, is_json, leaf_paths
from analyzer.store import snapshot
from analyzer.store.layout import Layout
from analyzer.store.manifest import Manifest, ObjectOutcome, RewriteRecord
from analyzer.store.snapshot import DATA, EVIDENCE, STAGED_SUFFIX, DataFile

#: Rows inside a partition are clustered by these columns (measured: row groups get skipped
#: by the detections' eventSource/eventName filters), then by time.
SORT_KEYS = [("eventSource", "ascending"), ("eventName", "ascending"), ("eventTime", "ascending")]
ROW_GROUP_ROWS = 32_768  # what compaction writes: a file once written in full row groups stays
COMPRESSION = "zstd"
#: Dictionary-encode the repetitive columns only: trying it on unique IDs and JSON blobs wastes
#: the writer's time before it falls back to plain encoding.
UNIQUE_COLUMNS = {
    "eventID", "requestID", "sharedEventID", "eventTime", "record_index", "extra",
    "userIdentity.sessionContext.attributes.creationDate",
}
DICTIONARY_COLUMNS = [path for path, field in leaf_paths() if path not in UNIQUE_COLUMNS and not is_json(field)]


#: Fault injection for the crash tests: ``ANALYZER_CRASH_AT=POINT[:N]`` makes the process SIGKILL
#: itself the Nth time (default: first) it reaches POINT (see :func:`crash_point`).
CRASH_ENV = "ANALYZER_CRASH_AT"
_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """A commit point (``batch.staged``/``moved``/``committed``, ``compact.*``): a real ``kill -9``
    here when :data:`CRASH_ENV` names it, nothing otherwise."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point == name:
        _reached[name] += 1
        if _reached[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class WrittenFile:
    """A file written under a staged name, not part of the dataset until a commit adds it."""

    day: str
    tmp_path: str
    rows: int
    min_time: str | None = None
    max_time: str | None = None

    @property
    def name(self) -> str:
        """The final file name (made unique by the batch id)."""
        return Path(self.tmp_path).name.removesuffix(STAGED_SUFFIX)

    def as_file(self, path: Path, root: Path, kind: str = DATA) -> DataFile:
        return DataFile(str(path.relative_to(root)), self.day, self.rows, self.min_time, self.max_time, kind)


@dataclass(frozen=True)
class Replacement:
    """A live file a rewrite replaces: by a staged copy without an older version's rows (or by
    nothing, when it held no other), plus the staged evidence of those rows."""

    retired: str  # relative to the dataset root
    kept: WrittenFile | None
    evidence: WrittenFile | None


def new_batch_id() -> str:
    return uuid.uuid4().hex[:16]


def fsync_path(path: Path) -> None:
    """Flush a file (or folder) to disk: a power loss after a rename must not expose an empty file."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_batch(table: pa.Table, tmp_dir: Path, sequence: int = 0) -> list[WrittenFile]:
    """Write one Parquet file per event date into ``tmp_dir`` (a worker's private folder)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    written: list[WrittenFile] = []
    if table.num_rows == 0:
        return written
    table = table.sort_by([(PARTITION_COLUMN, "ascending"), *SORT_KEYS])
    runs = pc.run_end_encode(table[PARTITION_COLUMN].combine_chunks())
    start = 0
    for end, day in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        part = table.slice(start, end - start).drop_columns([PARTITION_COLUMN])
        path = tmp_dir / f"part-{tmp_dir.name}-{sequence:03d}-{day.isoformat()}.parquet{STAGED_SUFFIX}"

        pq.write_table(
            part,
            path,
            compression=COMPRESSION,
            row_group_size=ROW_GROUP_ROWS,
            use_dictionary=DICTIONARY_COLUMNS,
            write_statistics=True,
        )
        written.append(WrittenFile(day.isoformat(), str(path), part.num_rows, *snapshot.time_range(part["eventTime"])))
        start = end
    return written


def write_quarantine(items: list[dict[str, Any]], path: Path) -> None:
    """Quarantined records as JSON Lines: source_object, record_index, reason, raw."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(item, ensure_ascii=True) + "\n" for item in items)
    path.write_text(lines, encoding="ascii")


class Dataset:
    """An open dataset directory; the writer's view (one writer at a time, enforced by a lock)."""

    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        self.layout = Layout(Path(root))
        if not create and not self.layout.internal.exists():
            raise AnalyzerError(f"{root}: no analyzer dataset here (run `analyzer ingest` first)")
        self.layout.create()  # also restores folders a user may have removed
        self.manifest = Manifest(self.layout.manifest)
        snapshot.adopt(self.manifest.db, self.layout)  # an older dataset: once, from the files on disk
        self._lock: IO[str] | None = None

    @property
    def root(self) -> Path:
        return self.layout.root

    def close(self) -> None:
        self.unlock()
        self.manifest.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------
    def lock(self) -> None:
        """Take the single-writer lock and repair whatever a killed writer left behind."""
        handle = open(self.layout.lock, "w")  # noqa: SIM115 - held for the writer's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise AnalyzerError(f"{self.root}: another analyzer process is writing this dataset") from exc
        self._lock = handle
        self.recover()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def recover(self) -> None:
        """Roll back batches and compactions a crash left pending, delete the files commits retired
        before a crash could, and drop temporary files."""
        live = {f.path for kind in (DATA, EVIDENCE) for f in self.manifest.live_files(kind=kind)}
        for batch, files in self.manifest.pending_batches():
            for relative in files:
                if relative not in live:  # never committed: not part of the dataset
                    (self.root / relative).unlink(missing_ok=True)
            self.manifest.forget_batch(batch)
        self.remove_retired(self.manifest.retired_files())
        if self.layout.tmp.exists():
            shutil.rmtree(self.layout.tmp)
        self.layout.tmp.mkdir(parents=True, exist_ok=True)

    def tmp_dir(self, batch: str) -> Path:
        return self.layout.tmp / batch

    def commit(
        self,
        batch: str,
        files: list[WrittenFile],
        quarantine_file: str | None,
        outcomes: Iterable[ObjectOutcome],
        *,
        replacements: Sequence[Replacement] = (),
        rewrites: Sequence[RewriteRecord] = (),
    ) -> None:
        """Make a batch's files (and a rewrite's) the dataset and record its objects: one manifest
        transaction, the commit point. Before it no reader sees any of them; after it the files
        the rewrite replaced are deleted."""
        added: list[tuple[Path, Path, DataFile | None]] = []
        for f in files:
            final = self.layout.partition(f.day) / f.name
            added.append((Path(f.tmp_path), final, f.as_file(final, self.root)))
        for r in replacements:
            if r.kept is not None:
                final = (self.root / r.retired).parent / r.kept.name
                added.append((Path(r.kept.tmp_path), final, r.kept.as_file(final, self.root)))
            if r.evidence is not None:
                final = self.layout.superseded / r.evidence.name
                added.append((Path(r.evidence.tmp_path), final, r.evidence.as_file(final, self.root, EVIDENCE)))
        if quarantine_file:
            added.append((Path(quarantine_file), self.layout.quarantine / f"{batch}.jsonl", None))
        self.manifest.begin_batch(batch, [str(dst.relative_to(self.root)) for _, dst, _ in added])
        for src, _, _ in added:  # workers write without waiting for the disk; durability is ours
            fsync_path(src)
        crash_point("batch.staged")
        stale = {r.kept.day if r.kept else r.evidence.day if r.evidence else "" for r in replacements} - {""}
        try:
            for src, dst, _ in added:  # in place, but not part of the dataset before the commit
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            for folder in {dst.parent for _, dst, _ in added}:
                fsync_path(folder)
            crash_point("batch.moved")
            self.manifest.commit_batch(
                batch, outcomes, sorted({f.day for f in files}),
                added=[file for _, _, file in added if file is not None],
                retired=[r.retired for r in replacements], stale=sorted(stale), rewrites=rewrites,
            )
        except Exception:
            self.roll_back(batch, [dst for _, dst, _ in added])
            raise
        crash_point("batch.committed")
        self.remove_retired([r.retired for r in replacements])
        for folder in {self.tmp_dir(batch), *(src.parent for src, _, _ in added)}:
            if folder.is_relative_to(self.layout.tmp):
                shutil.rmtree(folder, ignore_errors=True)

    def roll_back(self, batch: str, paths: Sequence[Path]) -> None:
        """Undo a batch or compaction whose commit failed (a full disk...): take out what it had moved
        into place, so that not even a glob sees it, and forget it."""
        for path in paths:
            path.unlink(missing_ok=True)
        self.manifest.forget_batch(batch)

    def remove_retired(self, paths: Sequence[str]) -> None:
        """Delete files a commit retired, then forget them (a crash between: the next writer redoes it)."""
        for relative in paths:
            (self.root / relative).unlink(missing_ok=True)
        for folder in {(self.root / relative).parent for relative in paths}:
            if folder.exists():
                fsync_path(folder)
        self.manifest.forget_files(paths)

    # -- reading ---------------------------------------------------------------------------------
    def days(self) -> list[str]:
        """Every day with live files, oldest first."""
        return self.manifest.live_days()

    def data_files(self, day: str | None = None) -> list[Path]:
        """The live data files (of one day): the committed snapshot, not what a glob finds."""
        return [self.root / f.path for f in self.manifest.live_files(day)]

    def quarantined(self) -> Iterator[dict[str, Any]]:
        """Every quarantined record of a committed batch, oldest batch first."""
        uncommitted = {batch for batch, _ in self.manifest.pending_batches()}  # a crash came before its commit
        for path in sorted(self.layout.quarantine.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
            if path.stem in uncommitted:
                continue
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)
