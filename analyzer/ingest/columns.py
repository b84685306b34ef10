"""Typed records → one Arrow table in the canonical schema (plus the ``event_date`` key).

Columns are built field by field over a chunk of records, so each pass is small and cache-hot.
``eventTime`` is parsed vectorised; the rare odd format falls back to Python and keeps its
original text in ``extra``. A record whose time cannot be read cannot be placed in a partition:
it is returned for quarantine instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from analyzer.ingest.decode import Decoded, Quarantined
from analyzer.ingest.records import dumps_json, encode
from analyzer.schema import EVENT_FIELDS, PARTITION_COLUMN, SCHEMA, is_json

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_TYPE = pa.timestamp("us", tz="UTC")


def _column(field: pa.Field, values: list[Any]) -> pa.Array:
    if is_json(field):
        blobs = pa.array([None if v is None else bytes(v) for v in values], pa.binary())
        try:
            return blobs.cast(pa.string())
        except pa.ArrowInvalid:  # invalid UTF-8 inside a blob: keep what can be kept, visibly
            return pa.array(
                [None if v is None else bytes(v).decode("utf-8", "replace") for v in values], pa.string()
            )
    if pa.types.is_struct(field.type):
        children = [
            _column(child, [None if o is None else getattr(o, child.name) for o in values])
            for child in field.type
        ]
        mask = pa.array([o is None for o in values], pa.bool_())
        return pa.StructArray.from_arrays(children, fields=list(field.type), mask=mask)
    return pa.array(values, field.type)


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def build_table(
    objects: list[tuple[str, Decoded]],
) -> tuple[pa.Table, list[tuple[str, Quarantined]]]:
    """Build the rows of several decoded objects; returns (table, records to quarantine)."""
    records: list[Any] = []
    indexes: list[int] = []
    sources: list[str] = []
    extras: dict[int, dict[str, Any]] = {}
    for source, decoded in objects:
        offset = len(records)
        records.extend(decoded.records)
        indexes.extend(decoded.indexes)
        sources.extend([source] * len(decoded.records))
        for position, extra in decoded.extras.items():
            extras[offset + position] = extra

    columns: dict[str, pa.Array] = {}
    for field in EVENT_FIELDS:
        if field.name != "eventTime":
            columns[field.name] = _column(field, [getattr(r, field.name) for r in records])

    times_text = pa.array([r.eventTime for r in records], pa.string())
    times = pc.strptime(times_text, format=TIME_FORMAT, unit="us", error_is_null=True)
    keep: list[bool] | None = None
    quarantined: list[tuple[str, Quarantined]] = []
    if times.null_count:
        keep = [True] * len(records)
        fixed = times.to_pylist()
        for i in pc.indices_nonzero(times.is_null()).to_pylist():
            text = records[i].eventTime
            parsed = _parse_time(text) if isinstance(text, str) else None
            if parsed is None:
                keep[i] = False
                reason = "record has no eventTime" if text is None else f"unreadable eventTime {text!r}"
                raw = _raw_record(records[i], extras.get(i))
                quarantined.append((sources[i], Quarantined(indexes[i], reason, raw)))
                continue
            fixed[i] = parsed
            if parsed.strftime(TIME_FORMAT) != text:
                extras.setdefault(i, {})["eventTime"] = text
        times = pa.array(fixed, TIME_TYPE)
    columns["eventTime"] = times.cast(TIME_TYPE)

    columns["extra"] = pa.array(
        [dumps_json(extras[i]).decode() if i in extras else None for i in range(len(records))]
        if extras
        else [None] * len(records),
        pa.string(),
    )
    columns["source_object"] = pa.array(sources, pa.string())
    columns["record_index"] = pa.array(indexes, pa.int32())
    table = pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)
    if keep is not None:
        table = table.filter(pa.array(keep))
    return with_partition(table), quarantined


def with_partition(table: pa.Table) -> pa.Table:
    """Append the ``event_date`` key: the event's own UTC date, never the folder's."""
    dates = pc.cast(pc.floor_temporal(table["eventTime"], unit="day"), pa.date32())
    return table.append_column(pa.field(PARTITION_COLUMN, pa.date32()), dates)


def _raw_record(record: Any, extra: dict[str, Any] | None) -> str:
    """The record as JSON again (the typed struct re-encoded, overlaid with its extra)."""
    import json

    value = json.loads(encode(record))
    if extra:
        value.update(extra)
    return dumps_json(value).decode()
