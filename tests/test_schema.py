"""The schema is the one contract: the parser's structs and the Parquet files follow it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer import ingest_objects
from analyzer.ingest.records import Record
from analyzer.schema import EVENT_FIELDS, SCHEMA, is_json
from analyzer.sources.local import walk

from records import log_key, record, write_log


def test_record_struct_mirrors_the_schema() -> None:
    assert [f.name for f in msgspec.structs.fields(Record)] == [f.name for f in EVENT_FIELDS]


def test_json_columns_are_plain_utf8_strings(tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1)])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "d", workers=1)
    [part] = (tmp_path / "d").glob("event_date=*/*.parquet")
    schema = pq.read_schema(part)
    assert schema.remove_metadata().equals(SCHEMA.remove_metadata())
    blobs = [f for f in SCHEMA if is_json(f)]
    assert blobs and all(schema.field(f.name).type == pa.string() for f in blobs)
    assert schema.field("eventTime").type == pa.timestamp("us", tz="UTC")


def test_partition_is_the_event_date_not_the_folder(tmp_path: Path) -> None:
    late = record(1, time="2026-11-20T23:59:59Z")
    write_log(tmp_path / "in", log_key(1, "Late000000000000", day="21"), [late])
    ingest_objects(walk([tmp_path / "in"]), tmp_path / "d", workers=1)
    assert [p.parent.name for p in (tmp_path / "d").glob("event_date=*/*.parquet")] == ["event_date=2026-11-20"]
