"""The ingest pipeline: source objects → parsed in worker processes → committed Parquet batches.

Objects are packed into batches of a few MB; each batch is decoded, built and written by one
worker process (both cores busy, no shared state), and committed by this process alone, in the
order results arrive. Memory is bounded by the batch size times the number of batches in flight,
whatever the number of objects.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.errors import ExitCode
from analyzer.ingest.columns import TableBuilder, build_rows, with_partition
from analyzer.ingest.decode import MAX_OBJECT_BYTES, NESTING_REASON, Decoded, ObjectError, decode_parts
from analyzer.ingest.workers import Job, ProgressMarker, Runner
from analyzer.integrity.digest import is_digest_key
from analyzer.integrity.record import digest_outcome
from analyzer.sources.base import SourceObject, skip_reason
from analyzer.store.compact import CompactStats, compact
from analyzer.store.dataset import Dataset, WrittenFile, new_batch_id, write_batch, write_quarantine
from analyzer.store.dedup import refresh_duplicates
from analyzer.store.manifest import UNCHANGED, ObjectOutcome, Rewrite, RewriteRecord
from analyzer.store.versions import Superseded, supersede

BATCH_BYTES = 12 * 1024 * 1024  # compressed input per batch (about 150k CloudTrail events)
BATCH_OBJECTS = 2_000
CHUNK_RECORDS = 16_384  # records per Arrow table build
READ_AHEAD_THREADS = 2
FILE_ROWS = 65_536  # rows a worker holds before writing a file: bounds memory; each file sorted, so
# its 4k-row groups cluster by eventSource/eventName and detections skip most of them
MAX_LISTED_PROBLEMS = 1_000


@dataclass
class IngestStats:
    """Counters of one run; also what the progress callback receives."""

    planned_objects: int = 0
    planned_bytes: int = 0
    unchanged: int = 0  # already in the manifest at the same version: not read again
    same_content: int = 0  # at a new version with the bytes the manifest holds: version recorded only
    retried: int = 0  # objects that had failed before, tried again by this run
    still_failing: int = 0  # failures in the manifest after this run (not given up)
    rewrites: list[Rewrite] = field(default_factory=list)  # known keys that came back with other content
    ingested: int = 0
    skipped: int = 0
    failed: int = 0
    events: int = 0
    quarantined: int = 0
    duplicates: int = 0
    bytes_read: int = 0
    bytes_uncompressed: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    phase: str = "ingest"  # then "index duplicates", "compact DAY"
    compaction: CompactStats | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    skips: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def processed(self) -> int:
        return self.ingested + self.skipped + self.failed + self.same_content

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failed or self.quarantined else ExitCode.OK

    def note(self, bucket: list[tuple[str, str]], uri: str, reason: str) -> None:
        if len(bucket) < MAX_LISTED_PROBLEMS:
            bucket.append((uri, reason))


@dataclass
class BatchResult:
    batch: str
    files: list[WrittenFile]
    quarantine_file: str | None
    outcomes: list[ObjectOutcome]
    warnings: list[tuple[str, str]]
    events: int
    bytes_uncompressed: int


# A batch item: (uri, size, version, payload) where payload is a picklable SourceObject to read
# in the worker, or the bytes already fetched by this process.
Item = tuple[str, int, str, Any]


def process_batch(
    batch: str, items: list[Item], tmp_dir: str, known: dict[str, str] | None = None,
    *, max_object_bytes: int = MAX_OBJECT_BYTES,
) -> BatchResult:
    """Worker side: decode, build and write one batch into ``tmp_dir`` (nothing visible yet).

    ``known``: the content hash the manifest holds per uri; an object with those very bytes (a
    touch, a re-download, a re-upload under a new ETag) is reported unchanged, not ingested again.

    Isolation by construction: everything one object goes through, from its bytes to its rows,
    runs inside one boundary that turns any exception (native libraries' own, MemoryError and
    RecursionError included) into that object's failure, with the reason; its rows, if some were
    already built, are taken out again. KeyboardInterrupt and SystemExit still stop the run."""
    folder = Path(tmp_dir)
    marker = ProgressMarker(folder)
    outcomes: list[ObjectOutcome] = []
    warnings: list[tuple[str, str]] = []
    quarantine: list[dict[str, Any]] = []
    good: dict[str, ObjectOutcome] = {}
    chunk = _Chunk()
    output = _Output(folder)
    uncompressed = 0
    dropped: set[str] = set()  # objects that failed after some of their rows were built

    def flush() -> None:
        marker.writing()
        for uri, reason in chunk.finish(quarantine, output):
            fail(uri, reason)

    def fail(uri: str, reason: str) -> None:
        outcome = good.pop(uri, None)
        if outcome is not None:
            outcomes.append(replace(outcome, status="failed", reason=reason))
        dropped.add(uri)
        quarantine[:] = [q for q in quarantine if q["source_object"] != uri]

    with ThreadPoolExecutor(READ_AHEAD_THREADS) as reader:  # reads overlap decoding (I/O releases the GIL)
        loaded = reader.map(_load, items)
        for position, ((uri, size, version, _), data) in enumerate(zip(items, loaded, strict=True)):
            marker.at(position, uri)
            if isinstance(data, Exception):
                outcomes.append(ObjectOutcome(uri, size, version, "failed", reason=f"cannot read: {data}"))
                continue
            digest = None
            try:
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
                if known and known.get(uri) == digest:
                    outcomes.append(ObjectOutcome(uri, size, version, UNCHANGED, content_hash=digest))
                    continue
                if is_digest_key(uri):  # no events: its metadata goes to the manifest, for analyzer verify
                    outcome, problem = digest_outcome(uri, size, version, data, digest)
                    outcomes.append(outcome)
                    warnings.extend([(uri, problem)] if problem else [])
                    continue
                parts = decode_parts(data, CHUNK_RECORDS, max_bytes=max_object_bytes)
                del data
                first = next(parts)
                uncompressed += first.uncompressed_bytes
                if first.skipped:
                    warnings.extend((uri, w) for w in first.warnings)
                    outcomes.append(ObjectOutcome(uri, size, version, "skipped", reason=first.skipped,
                                                  content_hash=digest))
                    continue
                good[uri] = ObjectOutcome(uri, size, version, "ingested", content_hash=digest)
                for part in chain([first], parts):
                    warnings.extend((uri, w) for w in part.warnings)
                    quarantine.extend({"source_object": uri, "record_index": q.record_index, "reason": q.reason,
                                       "raw": q.raw} for q in part.quarantined)
                    chunk.add(uri, part)
                    if len(chunk.builder) >= CHUNK_RECORDS:
                        flush()
                        marker.at(position, uri)
            except Exception as exc:  # by construction: whatever it is, it is this object's alone
                chunk.discard(uri)
                warnings[:] = [w for w in warnings if w[0] != uri]
                if uri in good:
                    fail(uri, _reason(exc))
                else:
                    outcomes.append(ObjectOutcome(uri, size, version, "failed", reason=_reason(exc),
                                                  content_hash=digest))
    flush()
    output.write()
    if dropped & set(output.rows):
        output.drop(dropped)

    lost = Counter(item["source_object"] for item in quarantine)
    outcomes.extend(replace(o, records=output.rows[uri], quarantined=lost[uri]) for uri, o in good.items())
    quarantine_file = None
    if quarantine:
        quarantine_file = str(folder / "quarantine.jsonl")
        write_quarantine(quarantine, Path(quarantine_file))
    marker.close()
    return BatchResult(batch, output.files, quarantine_file, outcomes, warnings, output.events, uncompressed)


def _reason(exc: BaseException) -> str:
    """One line naming what went wrong with an object."""
    if isinstance(exc, ObjectError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory decoding this object (MemoryError)"
    if isinstance(exc, RecursionError):
        return NESTING_REASON
    text = " ".join(str(exc).split())[:300]
    return f"cannot decode: {type(exc).__name__}: {text}" if text else f"cannot decode: {type(exc).__name__}"


def _load(item: Item) -> bytes | Exception:
    payload = item[3]
    if isinstance(payload, bytes):
        return payload
    try:
        return bytes(payload.read())
    except Exception as exc:
        return exc


class _Output:
    """A batch's rows on their way to Parquet: one file per day, a new set every FILE_ROWS rows."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tables: list[pa.Table] = []
        self.pending = 0
        self.events = 0
        self.rows: Counter[str] = Counter()
        self.files: list[WrittenFile] = []
        self.sequence = 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.pending += table.num_rows
        if self.pending >= FILE_ROWS:
            self.write()

    def write(self) -> None:
        if not self.tables:
            return
        table = pa.concat_tables(self.tables)
        self.tables, self.pending = [], 0
        self.events += table.num_rows
        self.rows.update(table["source_object"].to_pylist())
        self.files.extend(write_batch(table, self.folder, sequence=self.sequence))
        self.sequence += 1

    def drop(self, uris: set[str]) -> None:
        """Take out the rows of objects that failed after some of their rows were written (rare:
        a huge object written in parts, then out of memory): their files are written again."""
        wanted = pa.array(sorted(uris), pa.string())
        files, self.files = self.files, []
        for written in files:
            table = pq.read_table(written.tmp_path)
            keep = pc.invert(pc.is_in(table["source_object"], value_set=wanted))
            if pc.all(keep).as_py():
                self.files.append(written)
                continue
            Path(written.tmp_path).unlink()
            self.tables.append(with_partition(table.filter(keep)))
        for uri in uris:
            self.events -= self.rows.pop(uri, 0)
        remaining = pa.concat_tables(self.tables) if self.tables else None
        self.tables = []
        if remaining is not None and remaining.num_rows:
            self.files.extend(write_batch(remaining, self.folder, sequence=self.sequence))
            self.sequence += 1


class _Chunk:
    """Up to CHUNK_RECORDS records on their way to one Arrow table.

    Building is isolated record by record (:func:`~analyzer.ingest.columns.build_rows`); should
    it fail for the whole chunk anyway, each object is built on its own, so that only the
    objects at fault fail.
    """

    def __init__(self) -> None:
        self.builder = TableBuilder()
        self.objects: list[tuple[str, Decoded]] = []

    def _take(self) -> tuple[TableBuilder, list[tuple[str, Decoded]]]:
        """Hand over what was added and start empty."""
        taken = self.builder, self.objects
        self.builder, self.objects = TableBuilder(), []
        return taken

    def add(self, uri: str, decoded: Decoded) -> None:
        self.objects.append((uri, decoded))
        self.builder.add(uri, decoded)

    def discard(self, uri: str) -> None:
        """Forget an object that failed part-way (its rows must not land)."""
        if any(source == uri for source, _ in self.objects):
            _, objects = self._take()
            for source, decoded in objects:
                if source != uri:
                    self.add(source, decoded)

    def finish(self, quarantine: list[dict[str, Any]], output: _Output) -> list[tuple[str, str]]:
        """Build the chunk into ``output``; returns the objects that failed, with their reasons."""
        builder, objects = self._take()
        if not objects:
            return []
        try:
            results = [build_rows(objects, builder)]
        except Exception:
            results = []
            failed: list[tuple[str, str]] = []
            del builder
            for uri in dict.fromkeys(uri for uri, _ in objects):
                try:
                    results.append(build_rows([(u, d) for u, d in objects if u == uri]))
                except Exception as exc:
                    failed.append((uri, f"cannot build rows: {_reason(exc)}"))
            for table, dropped in results:
                self._land(table, dropped, quarantine, output)
            return failed
        for table, dropped in results:
            self._land(table, dropped, quarantine, output)
        return []

    @staticmethod
    def _land(table: pa.Table, dropped: list[tuple[str, Any]], quarantine: list[dict[str, Any]],
              output: _Output) -> None:
        quarantine.extend({"source_object": uri, "record_index": q.record_index, "reason": q.reason,
                           "raw": q.raw} for uri, q in dropped)
        output.add(table)


def _batches(
    objects: Iterable[SourceObject], dataset: Dataset, stats: IngestStats, batch_bytes: int
) -> Iterator[list[SourceObject]]:
    """New objects (not yet in the manifest at their version), packed into batches."""
    iterator = iter(objects)
    batch: list[SourceObject] = []
    size = 0
    while chunk := list(islice(iterator, 512)):
        wanted: list[SourceObject] = []
        for obj in chunk:
            reason = skip_reason(obj.uri)
            if reason:
                stats.skipped += 1
                stats.note(stats.skips, obj.uri, reason)
            else:
                wanted.append(obj)
        done = dataset.manifest.done([(o.uri, o.version) for o in wanted])
        failing = dataset.manifest.failing([o.uri for o in wanted if o.uri not in done])
        for obj in wanted:
            if obj.uri in done:
                stats.unchanged += 1
                continue
            stats.retried += obj.uri in failing
            stats.planned_objects += 1
            stats.planned_bytes += obj.size
            batch.append(obj)
            size += obj.size
            if size >= batch_bytes or len(batch) >= BATCH_OBJECTS:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


@dataclass(frozen=True)
class _FetchFailed:
    """A fetch that failed in this process; the worker records it as a failed object."""

    message: str

    def read(self) -> bytes:
        raise OSError(self.message)


def _fetch_all(objects: list[SourceObject], pool: ThreadPoolExecutor) -> list[Item]:
    def fetch(obj: SourceObject) -> Item:
        try:
            return (obj.uri, obj.size, obj.version, obj.read())
        except Exception as exc:
            return (obj.uri, obj.size, obj.version, _FetchFailed(str(exc)))

    return list(pool.map(fetch, objects))


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def ingest_objects(
    objects: Iterable[SourceObject],
    data: Path | str,
    *,
    workers: int | None = None,
    fetch_threads: int = 0,
    batch_bytes: int = BATCH_BYTES,
    progress: Callable[[IngestStats], None] | None = None,
    compact_partitions: bool = True,
    max_object_bytes: int = MAX_OBJECT_BYTES,
) -> IngestStats:
    """Ingest ``objects`` into the dataset at ``data``; returns the run's counters.

    ``fetch_threads`` > 0 reads the objects in this process with that many threads (for remote
    sources whose clients must not cross into worker processes); otherwise workers read them.
    With ``compact_partitions`` (the default) the day partitions the run touched are then merged
    into large sorted files (:mod:`analyzer.store.compact`): slower ingest, much faster queries.
    ``max_object_bytes`` caps one object's uncompressed size (default
    :data:`~analyzer.ingest.decode.MAX_OBJECT_BYTES`); a larger object fails, named.
    """
    stats = IngestStats()
    workers = workers or default_workers()
    dataset = Dataset(data)
    dataset.lock()
    batches = _batches(objects, dataset, stats, batch_bytes)
    first = next(batches, None)
    second = next(batches, None)
    # Worker processes cost about a second to start: not worth it for a single batch.
    runner = Runner(
        workers, inline=workers <= 1 or second is None,
        work=partial(process_batch, max_object_bytes=max_object_bytes),
        tmp_dir=dataset.tmp_dir, failed=_all_failed, new_batch=new_batch_id,
    )
    fetcher = ThreadPoolExecutor(fetch_threads) if fetch_threads else None
    try:
        for batch in chain([b for b in (first, second) if b is not None], batches):
            items: list[Item] = (
                _fetch_all(batch, fetcher) if fetcher
                else [(o.uri, o.size, o.version, o) for o in batch]
            )
            batch_id = new_batch_id()
            known = {uri: k.content_hash for uri, k in dataset.manifest.known([o.uri for o in batch]).items()
                     if k.content_hash}
            runner.submit(Job(batch_id, items, known))
            while runner.pending > workers:
                _collect(runner, dataset, stats, progress)
            if progress:
                progress(stats)
        while runner.pending:
            _collect(runner, dataset, stats, progress)
        runner.shutdown()  # the workers' memory is free before the merge needs it
        stats.phase = "index duplicates"
        if progress:
            progress(stats)
        stats.duplicates = refresh_duplicates(dataset)
        stats.still_failing = len(dataset.manifest.failures(given_up=False))
        if compact_partitions:
            stats.compaction = compact(dataset, progress=lambda day, done, total: _compacting(stats, progress, day))
            for partition, reason in stats.compaction.failures:
                stats.note(stats.warnings, partition, f"not compacted (queries stay correct, only slower): {reason}")
    finally:
        runner.cancel()
        runner.shutdown()
        if fetcher:
            fetcher.shutdown()
        dataset.close()
    stats.finished = time.monotonic()
    if progress:
        progress(stats)
    return stats


def _compacting(stats: IngestStats, progress: Callable[[IngestStats], None] | None, day: str) -> None:
    stats.phase = f"compact {day}"
    if progress:
        progress(stats)


def _all_failed(job: Job, reason: str) -> BatchResult:
    """The result of a batch none of whose objects could be ingested (its worker kept dying...)."""
    return BatchResult(new_batch_id(), [], None,
                       [ObjectOutcome(uri, size, version, "failed", reason=reason)
                        for uri, size, version, _ in job.items], [], 0, 0)


def _collect(
    runner: Runner,
    dataset: Dataset,
    stats: IngestStats,
    progress: Callable[[IngestStats], None] | None,
) -> None:
    """Commit every finished batch; a batch whose worker died is retried by the runner
    (:mod:`analyzer.ingest.workers`), and only the object at fault fails, not the run."""
    for result in runner.completed():
        staged, rewrites = _stage_rewrites(dataset, result)
        dataset.commit(result.batch, result.files, result.quarantine_file, result.outcomes,
                       replacements=staged.replacements if staged else (), rewrites=rewrites)
        stats.rewrites.extend(rewrite for rewrite, _, _ in rewrites)
        stats.events += result.events
        stats.bytes_uncompressed += result.bytes_uncompressed
        for outcome in result.outcomes:
            stats.bytes_read += outcome.size
            if outcome.status == "ingested":
                stats.ingested += 1
                stats.quarantined += outcome.quarantined
            elif outcome.status == "skipped":
                stats.skipped += 1
                stats.note(stats.skips, outcome.uri, outcome.reason or "")
            elif outcome.status == UNCHANGED:
                stats.same_content += 1
            else:
                stats.failed += 1
                stats.note(stats.failures, outcome.uri, outcome.reason or "")
        for uri, message in result.warnings:
            stats.note(stats.warnings, uri, message)
        if progress:
            progress(stats)


def _stage_rewrites(dataset: Dataset, result: BatchResult) -> tuple[Superseded | None, list[RewriteRecord]]:
    """Before a batch commits: the old rows of every known key it brings with other content are
    staged to move to the evidence (:mod:`analyzer.store.versions`); the batch's commit makes the
    move, and records the rewrites, in its one transaction."""
    landed = [o for o in result.outcomes if o.status in ("ingested", "skipped")]
    known = dataset.manifest.known([o.uri for o in landed])
    changed = [o for o in landed if o.uri in known and known[o.uri].content_hash != o.content_hash]
    if not changed:
        return None, []
    staged = supersede(dataset, [o.uri for o in changed], result.batch)
    rewrites = [(Rewrite(o.uri, known[o.uri].records, o.records, staged.moved[o.uri]), known[o.uri], o)
                for o in changed]
    return staged, rewrites
