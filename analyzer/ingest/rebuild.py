"""Rows → the original CloudTrail records: the proof that ingest is lossless.

A row holds typed columns plus ``extra``; rebuilding drops nulls (absent fields), parses the JSON
columns, renders ``eventTime`` in CloudTrail's format, then lets ``extra`` (unknown fields and the
originals of normalised values) win. A row that keeps its record's original bytes (a duplicate key,
invalid UTF-8...: :data:`~analyzer.ingest.records.ORIGINAL_KEY`) is rebuilt from them. What a
wrapper added (an EventBridge envelope...: :data:`~analyzer.ingest.shapes.WRAPPER_KEY`) is not part
of the record: ``analyzer.ingest.shapes.wrapper_of(row)`` gives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa

from analyzer.ingest.columns import TIME_FORMAT
from analyzer.ingest.records import original_bytes
from analyzer.ingest.shapes import WRAPPER_KEY
from analyzer.schema import EVENT_FIELDS, is_json


def _value(field: pa.Field, value: Any) -> Any:
    if is_json(field):
        return json.loads(value)
    if pa.types.is_struct(field.type):
        return {
            child.name: _value(child, value[child.name])
            for child in field.type
            if value.get(child.name) is not None
        }
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    return value


def rebuild_record(row: dict[str, Any]) -> dict[str, Any]:
    """The original record of one row (as returned by ``Table.to_pylist()``)."""
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    original = original_bytes(extra)
    if original is not None:  # Python's json, as the lenient decoder read it (the last of duplicates wins)
        return json.loads(original.decode("utf-8", "surrogateescape"))
    record = {f.name: _value(f, row[f.name]) for f in EVENT_FIELDS if row.get(f.name) is not None}
    extra.pop(WRAPPER_KEY, None)
    record.update(extra)
    return record


def rebuild_records(table: pa.Table) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches():
        for row in batch.to_pylist():
            yield rebuild_record(row)
