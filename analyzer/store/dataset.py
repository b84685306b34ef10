"""The Parquet dataset: atomic batch writes, commit through the manifest, crash recovery, dedup.

Writers (ingest workers) put files under ``_analyzer/tmp/<batch>/``; only the single committing
process moves them into ``event_date=*/`` partitions, bracketed by a ``pending`` → ``committed``
batch record in the manifest. Readers never see a half-written file, and a batch interrupted
between the two marks is rolled back on the next open, so a rerun re-ingests its objects exactly
once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, is_json, leaf_paths
from analyzer.store.layout import Layout
from analyzer.store.manifest import Manifest, ObjectOutcome

#: Rows inside a partition are clustered by these columns (measured: row groups get skipped
#: by the detections' eventSource/eventName filters), then by time.
SORT_KEYS = [("eventSource", "ascending"), ("eventName", "ascending"), ("eventTime", "ascending")]
ROW_GROUP_ROWS = 4_096  # an ingest's own files; compaction rewrites them in large row groups
COMPRESSION = "zstd"
#: Dictionary-encode the repetitive columns only: trying it on unique IDs and JSON blobs wastes
#: the writer's time before it falls back to plain encoding.
UNIQUE_COLUMNS = {
    "eventID", "requestID", "sharedEventID", "eventTime", "record_index", "extra",
    "userIdentity.sessionContext.attributes.creationDate",
}
DICTIONARY_COLUMNS = [path for path, field in leaf_paths() if path not in UNIQUE_COLUMNS and not is_json(field)]


@dataclass(frozen=True)
class WrittenFile:
    day: str
    tmp_path: str
    rows: int

    @property
    def name(self) -> str:
        """The final file name inside the day's partition (made unique by the batch id)."""
        return Path(self.tmp_path).name


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
        path = tmp_dir / f"part-{tmp_dir.name}-{sequence:03d}-{day.isoformat()}.parquet"

        pq.write_table(
            part,
            path,
            compression=COMPRESSION,
            row_group_size=ROW_GROUP_ROWS,
            use_dictionary=DICTIONARY_COLUMNS,
            write_statistics=True,
        )
        written.append(WrittenFile(day.isoformat(), str(path), part.num_rows))
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
        """Roll back batches a crash left pending, finish interrupted compactions, drop temporary files."""
        for batch, files in self.manifest.pending_batches():
            for relative in files:
                (self.root / relative).unlink(missing_ok=True)
            self.manifest.forget_batch(batch)
        for job, output, inputs in self.manifest.pending_compactions():
            if (self.root / output).exists():  # renamed into place: the merge is committed
                self.finish_compaction(job, inputs)
            else:
                self.manifest.end_compaction(job)
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
    ) -> None:
        """Make a batch's files visible and record its objects, atomically as a whole."""
        moves = [
            (Path(f.tmp_path), self.layout.partition(f.day) / f.name) for f in files
        ]
        if quarantine_file:
            moves.append((Path(quarantine_file), self.layout.quarantine / f"{batch}.jsonl"))
        self.manifest.begin_batch(batch, [str(dst.relative_to(self.root)) for _, dst in moves])
        for src, _ in moves:  # workers write without waiting for the disk; durability is ours
            fsync_path(src)
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        for folder in {dst.parent for _, dst in moves}:
            fsync_path(folder)
        self.manifest.commit_batch(batch, outcomes, sorted({f.day for f in files}))
        shutil.rmtree(self.tmp_dir(batch), ignore_errors=True)

    def finish_compaction(self, job: str, inputs: list[str]) -> None:
        """Remove the files (dataset-relative) a committed compaction replaced, then forget it."""
        for relative in inputs:
            (self.root / relative).unlink(missing_ok=True)
        for folder in {(self.root / relative).parent for relative in inputs}:
            if folder.exists():
                fsync_path(folder)
        self.manifest.end_compaction(job)

    # -- reading ---------------------------------------------------------------------------------
    def days(self) -> list[str]:
        """Every day partition, oldest first."""
        return sorted(path.name.split("=", 1)[1] for path in self.root.glob(f"{PARTITION_COLUMN}=*") if path.is_dir())

    def data_files(self) -> list[Path]:
        return sorted(self.root.glob(f"{PARTITION_COLUMN}=*/*.parquet"))

    def quarantined(self) -> Iterator[dict[str, Any]]:
        """Every quarantined record, oldest batch first."""
        for path in sorted(self.layout.quarantine.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)
