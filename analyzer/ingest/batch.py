"""The worker side of ingest: one batch of objects → decoded → built → written, nothing visible yet.

This module is what a worker process imports (the pool pickles :func:`process_batch` by name), so
it imports only what decoding, building and writing need: not DuckDB, the manifest's commits or
compaction, which only the ingesting process uses (measured: a worker started a tenth of a second
sooner, and some 40 MB smaller).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.ingest.columns import TableBuilder, build_rows, with_partition
from analyzer.ingest.decode import MAX_OBJECT_BYTES, NESTING_REASON, Decoded, ObjectError, decode_parts
from analyzer.ingest.workers import ProgressMarker, gc_paused
from analyzer.integrity.digest import is_digest_key
from analyzer.integrity.record import digest_outcome
from analyzer.store.dataset import WrittenFile, write_batch, write_quarantine
from analyzer.store.manifest import UNCHANGED, ObjectOutcome

#: Records per Arrow table build, and per record-by-record retry should a build fail (measured: 16k
#: records held 48 MB more per worker, and were no faster: values are converted per 1k anyway).
CHUNK_RECORDS = 4_096
READ_AHEAD_THREADS = 2
FILE_ROWS = 65_536  # rows a worker holds before writing a file: bounds memory; each file sorted, so
# its row groups cluster by eventSource/eventName and detections skip most of them


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

    The cyclic garbage collector is paused meanwhile (:func:`~analyzer.ingest.workers.gc_paused`).
    """
    with gc_paused():
        return _process_batch(batch, items, tmp_dir, known, max_object_bytes=max_object_bytes)


def _process_batch(
    batch: str, items: list[Item], tmp_dir: str, known: dict[str, str] | None = None,
    *, max_object_bytes: int = MAX_OBJECT_BYTES,
) -> BatchResult:
    """:func:`process_batch`, with the garbage collector paused.

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
                                                  content_hash=digest, content_sha256=first.content_sha256))
                    continue
                good[uri] = ObjectOutcome(uri, size, version, "ingested", content_hash=digest,
                                          content_sha256=first.content_sha256)
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
