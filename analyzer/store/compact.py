"""Compaction: rewrite a day partition's small files as one file sorted across the whole day.

Why: every detection is a scan of ``events``, and DuckDB pays a fixed cost per file and per row
group. An ingest leaves a day spread over tens of files (one per worker flush), each sorted on its
own; the rows one detection wants (say ``signin.amazonaws.com``/``ConsoleLogin``) then sit in a
row group of every file. Merged into one file sorted by (eventSource, eventName, eventTime), they
sit in one or two large row groups. Measured on 5M events: the catalogue in 1.5 s instead of 4.2-4.9 s.

How: the merge streams. Only the sort keys of the whole group are held in memory; their stable
global order says how many rows each output row group takes from each input file, and because
every input file is itself sorted, those rows are the next ones in that file. So each input is
read once, front to back, a few thousand rows at a time, and memory is an output row group plus a
slice of each input, not the day. (An unsorted input file still loses nothing: every row is taken
exactly once and each output row group is sorted; only the clustering suffers.) Two merges (of
different days) run at once, in threads, each keeping about one core busy.

Crash safety: the output is written to ``_analyzer/tmp/`` (a staged name no ``*.parquet`` glob
matches), recorded as pending, renamed into the partition, and committed by one manifest
transaction that adds it to the live files and retires its inputs: that transaction is the commit
point, so an analyzer reader sees either the inputs or the output, never both. The inputs are
deleted after it; a writer killed before the commit is rolled back, one killed after it has its
inputs deleted, by :meth:`Dataset.recover`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.store.dataset import (
    COMPRESSION,
    DICTIONARY_COLUMNS,
    SORT_KEYS,
    Dataset,
    crash_point,
    fsync_path,
    new_batch_id,
)
from analyzer.store.snapshot import STAGED_SUFFIX, DataFile

#: Rows per row group of a compacted file (measured on 5M events: 32k, 64k and 122k row groups
#: scan alike; the merge holds about three row groups at a time), fewer when rows are wide.
COMPACT_ROW_GROUP_ROWS = 32_768
COMPACT_ROW_GROUP_BYTES = 64 * 2**20
MIN_ROW_GROUP_ROWS = 1_024
#: A compacted file holds at most this many rows, which bounds the merge's memory (the sort keys
#: of one file's rows); files holding half of it or more are left as they are.
COMPACT_FILE_ROWS = 2_000_000
#: Files merged at once: the merge holds a slice of each (a more fragmented day is
#: merged in more than one pass), and at most this many bytes of them.
COMPACT_FAN_IN = 32
COMPACT_INPUT_BYTES = 256 * 2**20
#: Rows a merge reads from each input at a time (measured: as fast as reading whole row groups).
CURSOR_ROWS = 8_192
#: In memory a row takes about this many times its Parquet-encoded size (measured: 2.75x on the
#: synthetic corpus, where dictionary-encoded columns expand the most).
ARROW_EXPANSION = 3
_KEY_COLUMNS = [name for name, _ in SORT_KEYS]
#: A pass merges up to COMPACT_FAN_IN files into one: 32**4 files is plenty.
MAX_PASSES = 4
#: Merges run at once (see :class:`_Scheduler`): a merge keeps about one core busy.
COMPACT_PARALLEL = 2
#: Output row groups a merge holds at once: the pieces taken from the inputs, their ordered copy, and
#: the one the writer is encoding.
OUTPUT_GROUPS_HELD = 3
#: What merges running together may hold (:func:`_group_bytes`); one merge runs whatever it holds.
#: Measured on the 2M-event corpus (7 days of ~285k rows: ~220 MB each by this estimate): two at once
#: peaked at 1.2 GB RSS, above the ingest's own ~815 MB, one at a time at 760 MB (+0.9 s of a 26 s
#: ingest); days of ~30k rows (~145 MB) still pair.
COMPACT_PARALLEL_BYTES = 320 * 2**20
#: What a failing merge or commit raises; the day keeps its files (the next run retries it).
FAILURES = (OSError, ValueError, pa.ArrowException, RuntimeError, sqlite3.Error)


@dataclass
class CompactStats:
    """What one compaction pass did."""

    partitions: int = 0  # partitions examined
    rewritten: int = 0  # files written
    replaced: int = 0  # files they replaced
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


@dataclass(frozen=True)
class _Input:
    path: Path
    rows: int
    row_groups: int
    row_bytes: float = 1_000.0  # estimated in-memory bytes per row
    largest_group: int = 4_096  # rows of its biggest row group
    file: DataFile | None = None  # as the snapshot lists it

    @property
    def cursor_bytes(self) -> float:
        """What merging this file holds in memory: what its cursor reads at a time."""
        return min(self.largest_group, CURSOR_ROWS) * self.row_bytes


def row_group_rows(row_bytes: float) -> int:
    """Rows per output row group: :data:`COMPACT_ROW_GROUP_ROWS`, fewer for wide rows."""
    return min(COMPACT_ROW_GROUP_ROWS, max(MIN_ROW_GROUP_ROWS, int(COMPACT_ROW_GROUP_BYTES / max(row_bytes, 1.0))))


def _settled(item: _Input) -> bool:
    """A lone file already in (at least half) full-size row groups: rewriting it gains nothing."""
    return item.row_groups <= 1 or item.rows / item.row_groups >= row_group_rows(item.row_bytes) / 2


def plan_groups(files: list[_Input]) -> list[list[_Input]]:
    """Which files to merge together: the small ones, first-fit into files of at most
    :data:`COMPACT_FILE_ROWS` rows, :data:`COMPACT_FAN_IN` inputs and :data:`COMPACT_INPUT_BYTES`
    of input row groups. A lone file already in full-size row groups stays."""
    small = [f for f in files if f.rows < COMPACT_FILE_ROWS // 2]
    groups: list[list[_Input]] = []
    for item in sorted(small, key=lambda f: -f.rows):
        for group in groups:
            if (sum(f.rows for f in group) + item.rows <= COMPACT_FILE_ROWS and len(group) < COMPACT_FAN_IN
                    and sum(f.cursor_bytes for f in group) + item.cursor_bytes <= COMPACT_INPUT_BYTES):
                group.append(item)
                break
        else:
            groups.append([item])
    return [
        sorted(group, key=lambda f: f.path.name)
        for group in groups
        if len(group) > 1 or not _settled(group[0])
    ]


class _Cursor:
    """Reads one input file front to back, :data:`CURSOR_ROWS` rows at a time (not a whole row
    group: an ingest writes its files in full-size row groups, tens of MB each in memory)."""

    def __init__(self, file: pq.ParquetFile) -> None:
        self.batches = file.iter_batches(batch_size=CURSOR_ROWS)
        self.buffer: pa.Table | None = None

    def take(self, rows: int) -> Iterator[pa.Table]:
        while rows:
            if self.buffer is None or self.buffer.num_rows == 0:
                self.buffer = pa.Table.from_batches([next(self.batches)])
            count = min(rows, self.buffer.num_rows)
            yield self.buffer.slice(0, count)
            self.buffer = self.buffer.slice(count)
            rows -= count
        if self.buffer is not None and self.buffer.num_rows == 0:
            self.buffer = None  # let the rows go as soon as they are consumed


def merge_sorted(paths: list[Path], output: Path) -> int:
    """Merge sorted Parquet files into one sorted file at ``output``; returns its row count."""
    files = [pq.ParquetFile(path) for path in paths]
    for path, file in zip(paths, files, strict=True):
        if not file.schema_arrow.equals(files[0].schema_arrow):
            raise ValueError(f"{path.name} has another schema than {paths[0].name}: not merged")
    keys = pa.concat_tables(
        file.read(columns=_KEY_COLUMNS).append_column(
            "_file", pa.repeat(pa.scalar(index, pa.int32()), file.metadata.num_rows)
        )
        for index, file in enumerate(files)
    )
    # A stable sort: ties keep file order, then row order, so each file is consumed front to back.
    order = pc.sort_indices(keys, sort_keys=SORT_KEYS)
    from_file = keys["_file"].take(order).combine_chunks()
    first_row = list(accumulate((f.metadata.num_rows for f in files), initial=0))
    del keys

    cursors = [_Cursor(file) for file in files]
    consumed = [0] * len(files)
    rows_per_group = row_group_rows(sum(_row_bytes(f.metadata) * f.metadata.num_rows for f in files)
                                    / max(1, len(order)))
    writer = pq.ParquetWriter(
        output, files[0].schema_arrow, compression=COMPRESSION, use_dictionary=DICTIONARY_COLUMNS,
        write_statistics=True,
    )
    # The writer encodes one row group while this thread reads and orders the next (both release the GIL).
    with writer, ThreadPoolExecutor(1, thread_name_prefix="compact-writer") as pool:
        pending: Future[None] | None = None
        for start in range(0, len(order), rows_per_group):
            chunk_files = from_file.slice(start, rows_per_group)
            counts = pc.value_counts(chunk_files)
            taken = sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
            pieces: list[pa.Table] = []
            offset_of = [0] * len(files)  # where file f's rows start in the concatenated pieces
            offset = 0
            for index, count in taken:
                offset_of[index] = offset
                pieces.extend(cursors[index].take(count))
                offset += count
            # Row g (global) of file f sits at offset_of[f] + (g - first_row[f] - consumed[f]) in the pieces.
            shift = pa.array([first_row[f] + consumed[f] - offset_of[f] for f in range(len(files))], pa.int64())
            local = pc.subtract(order.slice(start, rows_per_group).cast(pa.int64()),
                                shift.take(chunk_files))
            for index, count in taken:
                consumed[index] += count
            row_group = pa.concat_tables(pieces).take(local)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, row_group, rows_per_group)
        if pending is not None:
            pending.result()
    return len(order)


def _row_bytes(metadata: pq.FileMetaData) -> float:
    """Estimated in-memory bytes per row, from the encoded sizes in the footer."""
    encoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return ARROW_EXPANSION * encoded / max(1, metadata.num_rows)


def _inputs(dataset: Dataset, day: str) -> list[_Input]:
    """The day's live files (the snapshot's, not what is on disk)."""
    inputs = []
    for file in dataset.manifest.live_files(day):
        path = dataset.root / file.path
        metadata = pq.read_metadata(path)
        largest = max((metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)), default=0)
        inputs.append(_Input(path, metadata.num_rows, metadata.num_row_groups, _row_bytes(metadata), largest, file))
    return inputs


def compact_partition(dataset: Dataset, day: str, stats: CompactStats) -> None:
    """Compact one day partition (the caller holds the writer lock)."""
    for _ in range(MAX_PASSES):
        groups = plan_groups(_inputs(dataset, day))
        if not groups:
            return
        for group in groups:
            _commit_merge(dataset, day, group, _merge(dataset, day, group), stats)


@dataclass(frozen=True)
class _Merged:
    """A group merged into one staged file, not yet part of the dataset."""

    job: str
    tmp: Path
    name: str
    rows: int


def _merge(dataset: Dataset, day: str, group: list[_Input]) -> _Merged:
    """Merge ``group`` into a staged file; touches files only, never the manifest (so that it may
    run in a thread beside another merge, the commits staying with the caller)."""
    job = new_batch_id()
    tmp_dir = dataset.tmp_dir(job)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    name = f"part-{job}-compacted-{day}.parquet"
    tmp = tmp_dir / f"{name}{STAGED_SUFFIX}"
    try:
        rows = merge_sorted([item.path for item in group], tmp)
        expected = sum(item.rows for item in group)
        if rows != expected:  # cannot happen; never swap files on a miscount
            raise RuntimeError(f"wrote {rows} rows for {expected}")
        fsync_path(tmp)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return _Merged(job, tmp, name, rows)


def _commit_merge(dataset: Dataset, day: str, group: list[_Input], merged: _Merged, stats: CompactStats) -> None:
    """Put a merged file in place of its inputs: one manifest transaction (the commit point)."""
    job, tmp, name, rows = merged.job, merged.tmp, merged.name, merged.rows
    tmp_dir = tmp.parent
    partition = dataset.layout.partition(day)
    final = partition / name
    files = [item.file for item in group if item.file is not None]
    inputs = [file.path for file in files]
    times = [t for file in files for t in (file.min_time, file.max_time) if t is not None]
    output = DataFile(str(final.relative_to(dataset.root)), day, rows,
                      min(times) if times else None, max(times) if times else None)
    dataset.manifest.begin_batch(job, [output.path])  # pending: rolled back if no commit follows
    crash_point("compact.staged")
    try:
        os.replace(tmp, final)  # in place, not yet part of the dataset
        fsync_path(partition)
        crash_point("compact.moved")
        dataset.manifest.commit_compaction(job, output, inputs)  # the commit point
    except Exception:
        dataset.roll_back(job, [final])
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    crash_point("compact.committed")
    dataset.remove_retired(inputs)
    tmp_dir.rmdir()
    stats.rewritten += 1
    stats.replaced += len(group)
    stats.rows += rows


def _group_bytes(group: list[_Input]) -> float:
    """What merging ``group`` holds in memory: a cursor's slice of each input, and the output row groups
    being built, ordered and encoded (:data:`OUTPUT_GROUPS_HELD`; the sort keys are small)."""
    rows = sum(item.rows for item in group)
    row_bytes = sum(item.row_bytes * item.rows for item in group) / max(1, rows)
    output = min(rows, row_group_rows(row_bytes)) * row_bytes
    return sum(item.cursor_bytes for item in group) + OUTPUT_GROUPS_HELD * output


class _Scheduler:
    """Runs the merges of several days, up to ``parallel`` at a time in threads (a merge keeps
    about one core busy: Parquet decoding, ``take`` and encoding release the GIL) while what they
    hold together (:func:`_group_bytes`: the inputs' slices and the output row groups) stays within
    :data:`COMPACT_PARALLEL_BYTES`: large days are merged one at a time. Plans and commits stay in
    this thread (the manifest's connection is this thread's); a day's next pass is planned once its
    merges are all committed. Failures are per day, as before: the day keeps its files (correct, slower)."""

    def __init__(self, dataset: Dataset, days: list[str], stats: CompactStats,
                 progress: Callable[[str, int, int], None] | None, parallel: int) -> None:
        self.dataset, self.stats, self.progress, self.parallel = dataset, stats, progress, parallel
        self.days = list(days)
        self.total = len(days)
        self.started = 0
        self.queue: list[tuple[str, list[_Input]]] = []  # planned merges not yet running
        self.passes: dict[str, int] = {}
        self.open: dict[str, int] = {}  # day -> merges planned in its current pass not yet committed
        self.failed: set[str] = set()
        self.running: dict[Future[_Merged], tuple[str, list[_Input]]] = {}

    def run(self, pool: ThreadPoolExecutor) -> None:
        while True:
            self._fill(pool)
            if not self.running:
                return
            done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in done:
                day, group = self.running.pop(future)
                self._finish(day, group, future)

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        while len(self.running) < self.parallel:
            if not self.queue and not self._plan_next_day():
                return
            day, group = self.queue[0]
            held = sum(_group_bytes(g) for _, g in self.running.values())
            if self.running and held + _group_bytes(group) > COMPACT_PARALLEL_BYTES:
                return  # wait: together they would hold too much
            self.queue.pop(0)
            self.running[pool.submit(_merge, self.dataset, day, group)] = (day, group)

    def _plan_next_day(self) -> bool:
        """Plan the next day that has merges to do (clearing those that have none); False when
        every day is planned."""
        while self.days:
            day = self.days.pop(0)
            if self.progress:
                self.progress(day, self.started, self.total)
            self.started += 1
            self.stats.partitions += 1
            if self._plan(day):
                return True
        return False

    def _plan(self, day: str) -> bool:
        """Plan the next pass of ``day``; False when it has nothing (more) to merge."""
        try:
            groups = plan_groups(_inputs(self.dataset, day)) if self.passes.get(day, 0) < MAX_PASSES else []
        except FAILURES as exc:
            self._fail(day, exc)
            return False
        if not groups:
            self.dataset.manifest.clear_uncompacted(day)
            return False
        self.passes[day] = self.passes.get(day, 0) + 1
        self.open[day] = len(groups)
        self.queue.extend((day, group) for group in groups)
        return True

    def _finish(self, day: str, group: list[_Input], future: Future[_Merged]) -> None:
        self.open[day] -= 1
        try:
            merged = future.result()
            if day in self.failed:  # an earlier merge of the day failed: leave the day as it is
                shutil.rmtree(merged.tmp.parent, ignore_errors=True)
            else:
                _commit_merge(self.dataset, day, group, merged, self.stats)
        except FAILURES as exc:
            self._fail(day, exc)
        if not self.open[day] and day not in self.failed:
            self._plan(day)  # its next pass, if it needs one

    def _fail(self, day: str, exc: BaseException) -> None:
        if day not in self.failed:
            self.failed.add(day)
            self.stats.failures.append((str(self.dataset.layout.partition(day)), f"{type(exc).__name__}: {exc}"))
        self.queue = [(d, g) for d, g in self.queue if d != day]


@contextmanager
def _returning_memory_pool() -> Iterator[None]:
    """Allocate with jemalloc while merging, where pyarrow has it: it gives freed row groups back to
    the system sooner than the default mimalloc (measured on a 724k-row day: peak RSS 560 MB
    instead of 750 MB, same speed)."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        yield
        return
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
        pool.release_unused()


def compact(
    dataset: Dataset,
    days: list[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    parallel: int = COMPACT_PARALLEL,
) -> CompactStats:
    """Compact the partitions an ingest touched (or ``days``); a failure is reported, not raised.

    The caller holds the writer lock. ``progress(day, done, total)`` is called before each partition.
    Up to ``parallel`` merges run at once (:class:`_Scheduler`).
    """
    stats = CompactStats()
    days = dataset.manifest.uncompacted() if days is None else days
    with _returning_memory_pool(), ThreadPoolExecutor(max(1, parallel), thread_name_prefix="compact") as pool:
        _Scheduler(dataset, days, stats, progress, max(1, parallel)).run(pool)
    stats.finished = time.monotonic()
    return stats
