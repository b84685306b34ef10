"""Object versions: a log object rewritten with other content replaces its old rows, which stay as evidence.

A CloudTrail log object never changes once delivered, so a known key that comes back with other
bytes is a tampering signal, and its old rows must neither stay beside the new ones (doubled
events) nor vanish (lost evidence). Rows carry ``source_object`` and ``record_index`` but not the
object's version, so the old version's rows are *moved*: each live file holding some is rewritten
without them, and the removed rows go to ``_analyzer/superseded/`` (Parquet under a suffix no
``*.parquet`` glob matches), read by the ``events_superseded`` view. Rewrites are rare; this path
is costly (it scans the dataset's ``source_object`` column) and correct.

Crash safety: the evidence file is put in place first, under a name derived from the input file
(a redo overwrites it); the rewritten file then replaces the input through the manifest's
compaction journal (rename = commit point, rolled forward by :meth:`Dataset.recover`). The batch
bringing the new version commits after all of this, so a crash anywhere leaves the manifest at the
old version and the next run does the rewrite again, finding nothing left to move.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.schema import PARTITION_COLUMN
from analyzer.store.dataset import COMPRESSION, DICTIONARY_COLUMNS, Dataset, fsync_path, new_batch_id
from analyzer.store.layout import Layout

EVIDENCE_SUFFIX = ".evidence"


def superseded_dir(layout: Layout) -> Path:
    return layout.internal / "superseded"


def supersede(dataset: Dataset, uris: Iterable[str], by_batch: str) -> Counter[str]:
    """Move the live rows of ``uris`` out of the data files into evidence; returns rows moved per uri."""
    wanted = sorted(set(uris))
    moved: Counter[str] = Counter()
    if not wanted:
        return moved
    days: set[str] = set()
    for path in _files_holding(dataset, wanted):
        moved.update(_split(dataset, path, set(wanted), by_batch))
        days.add(path.parent.name.split("=", 1)[1])
    dataset.manifest.mark_stale(sorted(days))  # rows left these days: their duplicate index is recomputed
    return moved


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


def _split(dataset: Dataset, path: Path, uris: set[str], by_batch: str) -> Counter[str]:
    """Rewrite ``path`` without the rows of ``uris``, which become an evidence file."""
    day = path.parent.name.split("=", 1)[1]
    job = new_batch_id()
    tmp_dir = dataset.tmp_dir(job)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    kept_tmp = tmp_dir / f"part-{job}-rewritten-{day}.parquet"
    evidence_tmp = tmp_dir / f"{path.stem}{EVIDENCE_SUFFIX}"
    source = pq.ParquetFile(path)
    group_rows = source.metadata.row_group(0).num_rows if source.metadata.num_row_groups else 4_096
    value_set = pa.array(sorted(uris), pa.string())
    moved: Counter[str] = Counter()
    kept_rows = 0
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
            if old.num_rows:
                old = (old.append_column(PARTITION_COLUMN, pa.array([date.fromisoformat(day)] * old.num_rows))
                       .append_column("superseded_by", pa.array([by_batch] * old.num_rows, pa.string()))
                       .append_column("superseded_at", pa.array([stamp] * old.num_rows)))
                if evidence_writer is None:
                    evidence_writer = pq.ParquetWriter(evidence_tmp, old.schema, compression=COMPRESSION)
                evidence_writer.write_table(old)
                moved.update(old["source_object"].to_pylist())
    finally:
        for writer in (kept_writer, evidence_writer):
            if writer is not None:
                writer.close()
    relative = str(path.relative_to(dataset.root))
    if evidence_writer is not None:
        folder = superseded_dir(dataset.layout)
        folder.mkdir(parents=True, exist_ok=True)
        fsync_path(evidence_tmp)
        os.replace(evidence_tmp, folder / evidence_tmp.name)
        fsync_path(folder)
    if kept_rows:
        final = path.parent / kept_tmp.name
        fsync_path(kept_tmp)
        dataset.manifest.begin_compaction(job, str(final.relative_to(dataset.root)), [relative])
        os.replace(kept_tmp, final)  # the commit point
        dataset.finish_compaction(job, [relative])
    else:  # the file held nothing else: removing it is the commit point
        path.unlink()
        fsync_path(path.parent)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return moved
