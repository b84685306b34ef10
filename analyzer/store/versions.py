"""Object versions: a log object rewritten with other content replaces its old rows, which stay as evidence.

A CloudTrail log object never changes once delivered, so a known key that comes back with other
bytes is a tampering signal, and its old rows must neither stay beside the new ones (doubled
events) nor vanish (lost evidence). Rows carry ``source_object`` and ``record_index`` but not the
object's version, so the old version's rows are *moved*: each live file holding some is rewritten
without them, and the removed rows go to ``_analyzer/superseded/`` (Parquet under a suffix no
``*.parquet`` glob matches), read by the ``events_superseded`` view. Rewrites are rare; this path
is costly (it scans the dataset's ``source_object`` column) and correct.

Crash safety: :func:`supersede` only *stages* (the rewritten files and the evidence, under
``_analyzer/tmp/``); the batch bringing the new version commits them together with its own files
in one manifest transaction (:meth:`Dataset.commit`: the rewritten files and the evidence become
live, the files they replace are retired). A crash before it leaves the old version live and no
evidence, and the next run does the rewrite again; after it, the old files are deleted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.schema import PARTITION_COLUMN
from analyzer.store.dataset import COMPRESSION, DICTIONARY_COLUMNS, Dataset, Replacement, WrittenFile, new_batch_id
from analyzer.store.layout import Layout
from analyzer.store.snapshot import EVIDENCE_SUFFIX, STAGED_SUFFIX, time_range


def superseded_dir(layout: Layout) -> Path:
    return layout.superseded


@dataclass
class Superseded:
    """A rewrite staged for the batch that brings the new versions: rows moved per uri, and the
    files to replace (committed by :meth:`Dataset.commit`)."""

    moved: Counter[str] = field(default_factory=Counter)
    replacements: list[Replacement] = field(default_factory=list)


def supersede(dataset: Dataset, uris: Iterable[str], by_batch: str) -> Superseded:
    """Stage moving the live rows of ``uris`` out of the data files into evidence."""
    wanted = sorted(set(uris))
    staged = Superseded()
    for path in _files_holding(dataset, wanted) if wanted else []:
        moved, replacement = _split(dataset, path, set(wanted), by_batch)
        staged.moved.update(moved)
        staged.replacements.append(replacement)
    return staged


def _files_holding(dataset: Dataset, uris: list[str]) -> list[Path]:
    files = [str(p) for p in dataset.data_files()]
    if not files:
        return []
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    try:
        rows = con.execute(
            "select distinct filename from read_parquet($files, filename = true)"
            " where source_object in (select unnest($uris))",
            {"files": files, "uris": uris},
        ).fetchall()
    finally:
        con.close()
    return sorted(Path(row[0]) for row in rows)


def _split(dataset: Dataset, path: Path, uris: set[str], by_batch: str) -> tuple[Counter[str], Replacement]:
    """Stage ``path`` rewritten without the rows of ``uris``, and those rows as an evidence file."""
    day = path.parent.name.split("=", 1)[1]
    job = new_batch_id()
    tmp_dir = dataset.tmp_dir(by_batch) / "rewrites"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    kept_tmp = tmp_dir / f"part-{job}-rewritten-{day}.parquet{STAGED_SUFFIX}"
    evidence_tmp = tmp_dir / f"{job}-{path.stem}{EVIDENCE_SUFFIX}{STAGED_SUFFIX}"
    source = pq.ParquetFile(path)
    group_rows = source.metadata.row_group(0).num_rows if source.metadata.num_row_groups else 4_096
    value_set = pa.array(sorted(uris), pa.string())
    moved: Counter[str] = Counter()
    kept_rows = old_rows = 0
    kept_times: list[str] = []
    old_times: list[str] = []
    kept_writer: pq.ParquetWriter | None = None
    evidence_writer: pq.ParquetWriter | None = None
    stamp = pa.scalar(int(time.time() * 1_000_000), pa.timestamp("us", tz="UTC"))
    try:
        for index in range(source.num_row_groups):
            table = source.read_row_group(index)
            mask = pc.fill_null(pc.is_in(table["source_object"], value_set=value_set), False)
            keep, old = table.filter(pc.invert(mask)), table.filter(mask)
            if keep.num_rows:
                if kept_writer is None:
                    kept_writer = pq.ParquetWriter(kept_tmp, table.schema, compression=COMPRESSION,
                                                   use_dictionary=DICTIONARY_COLUMNS, write_statistics=True)
                kept_writer.write_table(keep, row_group_size=group_rows)
                kept_rows += keep.num_rows
                kept_times.extend(t for t in time_range(keep["eventTime"]) if t)
            if old.num_rows:
                old_times.extend(t for t in time_range(old["eventTime"]) if t)
                old = (old.append_column(PARTITION_COLUMN, pa.array([date.fromisoformat(day)] * old.num_rows))
                       .append_column("superseded_by", pa.array([by_batch] * old.num_rows, pa.string()))
                       .append_column("superseded_at", pa.array([stamp] * old.num_rows)))
                if evidence_writer is None:
                    evidence_writer = pq.ParquetWriter(evidence_tmp, old.schema, compression=COMPRESSION)
                evidence_writer.write_table(old)
                old_rows += old.num_rows
                moved.update(old["source_object"].to_pylist())
    finally:
        for writer in (kept_writer, evidence_writer):
            if writer is not None:
                writer.close()
    kept = _written(day, kept_tmp, kept_rows, kept_times) if kept_rows else None
    evidence = _written(day, evidence_tmp, old_rows, old_times) if old_rows else None
    # A file that held nothing else is replaced by nothing: its retirement is the change.
    return moved, Replacement(str(path.relative_to(dataset.root)), kept, evidence)


def _written(day: str, path: Path, rows: int, times: list[str]) -> WrittenFile:
    return WrittenFile(day, str(path), rows, min(times) if times else None, max(times) if times else None)
