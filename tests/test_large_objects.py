"""A huge object is decoded and written in bounded parts, with the same result as in one piece."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import connect, ingest
from analyzer.ingest import decode, pipeline, rebuild_record
from analyzer.sources.local import walk

from records import log_key, record, write_log


def test_huge_object_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "LARGE_OBJECT_BYTES", 10_000)
    monkeypatch.setattr(pipeline, "CHUNK_RECORDS", 100)
    monkeypatch.setattr(pipeline, "FILE_ROWS", 250)
    records = [record(i, time=f"2026-11-{20 + i % 2}T10:00:00Z") for i in range(1_000)]
    records[7]["readOnly"] = "false"  # one record for the lenient path
    del records[500]["eventTime"]  # one for the quarantine
    write_log(tmp_path / "in", log_key(), records)
    stats = ingest(walk([tmp_path / "in"]), tmp_path / "d", workers=1, compact_partitions=False)
    assert (stats.events, stats.quarantined) == (999, 1)
    assert len(list((tmp_path / "d").glob("event_date=*/*.parquet"))) > 2  # written as it went
    rows = connect(tmp_path / "d").sql("select * from events order by record_index").to_arrow_table().to_pylist()
    assert [rebuild_record(row) for row in rows] == records[:500] + records[501:]
