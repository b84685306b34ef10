"""Typed records → one Arrow table in the canonical schema (plus the ``event_date`` key).

:class:`TableBuilder` takes each object's records right after they are decoded, while they are
still in the CPU cache, and copies every schema leaf into a plain Python list (C-level ``map``;
measured: walking tens of thousands of cold records once per column cost more than decoding
them). Arrow arrays are built from those lists once per chunk. ``eventTime`` is parsed
vectorised; the rare odd format falls back to Python and keeps its original text in ``extra``. A
record whose time cannot be read cannot be placed in a partition: it is returned for quarantine.

Should building a table fail anyway, whatever the exception (:func:`build_rows`), the rows are
built again record by record and only the records that cannot be built are quarantined.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import repeat
from operator import is_not
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.ingest.decode import Decoded, Quarantined
from analyzer.ingest.records import Record, dumps_json, encode, original_bytes
from analyzer.schema import EVENT_FIELDS, PARTITION_COLUMN, SCHEMA, is_json

astuple = msgspec.structs.astuple

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
TIME_TYPE = pa.timestamp("us", tz="UTC")


def _transpose(structs: Any, empty: Any) -> list[tuple[Any, ...]]:
    """The field values of many structs, one tuple per field (C-level; None counts as ``empty``)."""
    if None in structs:
        structs = [empty if s is None else s for s in structs]
    return list(zip(*map(astuple, structs), strict=True))


def _to_bytes(raw: Any) -> bytes | None:
    return None if raw is None else bytes(raw)


class _Leaf:
    """The values of one schema field, accumulated object by object."""

    def __init__(self, field: pa.Field, struct_type: Any) -> None:
        self.field = field
        self.json = is_json(field)
        self.children: list[_Leaf] = []
        if pa.types.is_struct(field.type):
            types = {f.name: f.type for f in msgspec.structs.fields(struct_type)}
            self.children = [_Leaf(child, types[child.name]) for child in field.type]
            self.empty = struct_type()
        self.values: list[Any] = []  # scalars, JSON bytes, or (for structs) validity flags

    def add(self, values: tuple[Any, ...]) -> None:
        if self.children:
            self.values.extend(map(is_not, values, repeat(None)))
            for child, column in zip(self.children, _transpose(values, self.empty), strict=True):
                child.add(column)
        elif self.json:  # copy out of msgspec.Raw now, so the decompressed file can be freed
            self.values.extend(map(_to_bytes, values))
        else:
            self.values.extend(values)

    def array(self) -> pa.Array:
        if self.children:
            children = [child.array() for child in self.children]
            mask = pc.invert(pa.array(self.values, pa.bool_()))
            return pa.StructArray.from_arrays(children, fields=list(self.field.type), mask=mask)
        if self.json:  # the decoder sends a blob with invalid UTF-8 down the lenient path: this cast holds
            return pa.array(self.values, pa.binary()).cast(pa.string())
        return pa.array(self.values, self.field.type)

    def take(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (used when records are quarantined)."""
        self.values = [self.values[i] for i in keep]
        for child in self.children:
            child.take(keep)


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset, year 9999 with a negative
        return None


class TableBuilder:
    """Accumulates decoded objects and builds one Arrow table from them."""

    def __init__(self) -> None:
        types = {f.name: f.type for f in msgspec.structs.fields(Record)}
        self.leaves = [_Leaf(f, types[f.name]) for f in EVENT_FIELDS]
        self.sources: list[str] = []
        self.indexes: list[int] = []
        self.extras: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.sources)

    def add(self, source: str, decoded: Decoded) -> None:
        offset = len(self.sources)
        records = decoded.records
        if not records:
            return
        for leaf, column in zip(self.leaves, _transpose(records, None), strict=True):
            leaf.add(column)
        self.sources.extend(repeat(source, len(records)))
        self.indexes.extend(decoded.indexes)
        for position, extra in decoded.extras.items():
            self.extras[offset + position] = extra

    def finish(self) -> tuple[pa.Table, list[tuple[str, Quarantined]]]:
        """The table of every record added (with ``event_date``), and the records to quarantine."""
        time_leaf = next(leaf for leaf in self.leaves if leaf.field.name == "eventTime")
        times, dropped = self._times(time_leaf.values)
        quarantined = [(self.sources[i], q) for i, q in dropped.items()]
        if dropped:
            keep = [i for i in range(len(self.sources)) if i not in dropped]
            for leaf in self.leaves:
                leaf.take(keep)
            self.sources = [self.sources[i] for i in keep]
            self.indexes = [self.indexes[i] for i in keep]
            self.extras = {new: self.extras[old] for new, old in enumerate(keep) if old in self.extras}
            times = times.take(pa.array(keep, pa.int64()))  # typed: an empty keep list has no type
        columns = {leaf.field.name: leaf.array() for leaf in self.leaves if leaf is not time_leaf}
        columns["eventTime"] = times
        count = len(self.sources)
        extras = self.extras
        columns["extra"] = pa.array(
            [dumps_json(extras[i]).decode() if i in extras else None for i in range(count)]
            if extras else repeat(None, count),
            pa.string(), size=count,
        )
        columns["source_object"] = pa.array(self.sources, pa.string())
        columns["record_index"] = pa.array(self.indexes, pa.int32())
        table = pa.Table.from_arrays([columns[f.name] for f in SCHEMA], schema=SCHEMA)
        return with_partition(table), quarantined

    def _times(self, texts: list[Any]) -> tuple[pa.Array, dict[int, Quarantined]]:
        text_array = pa.array(texts, pa.string())
        times = pc.strptime(text_array, format=TIME_FORMAT, unit="us", error_is_null=True)
        dropped: dict[int, Quarantined] = {}
        if not times.null_count:
            return times.cast(TIME_TYPE), dropped
        fixed = times.to_pylist()
        for i in pc.indices_nonzero(times.is_null()).to_pylist():
            text = texts[i]
            parsed = _parse_time(text) if isinstance(text, str) else None
            if parsed is None:
                reason = "record has no eventTime" if text is None else f"unreadable eventTime {text!r}"
                dropped[i] = Quarantined(self.indexes[i], reason, self._raw_at(i))
                continue
            fixed[i] = parsed
            if parsed.strftime(TIME_FORMAT) != text:
                self.extras.setdefault(i, {})["eventTime"] = text
        return pa.array(fixed, TIME_TYPE), dropped

    def _raw_at(self, i: int) -> str:
        """Record ``i`` as JSON text, to quarantine it: its original where its row kept it."""
        extra = self.extras.get(i, {})
        original = original_bytes(extra)
        if original is not None:
            return original.decode("utf-8", "surrogateescape")
        try:
            return dumps_json(self._record_at(i)).decode()
        except Exception as exc:  # e.g. nested too deep to re-serialise: still quarantined, reason kept
            return f"<record {self.indexes[i]} could not be re-serialised: {type(exc).__name__}>"

    def _record_at(self, i: int) -> dict[str, Any]:
        """Record ``i`` rebuilt from the accumulated values (to quarantine it raw)."""

        def value(leaf: _Leaf) -> Any:
            if leaf.children:
                return {c.field.name: value(c) for c in leaf.children if _present(c, i)}
            raw = leaf.values[i]
            return json.loads(raw) if leaf.json else raw

        record = {leaf.field.name: value(leaf) for leaf in self.leaves if _present(leaf, i)}
        record.update(self.extras.get(i, {}))
        return record


def _present(leaf: _Leaf, i: int) -> bool:
    return bool(leaf.values[i]) if leaf.children else leaf.values[i] is not None


def build_table(objects: list[tuple[str, Decoded]]) -> tuple[pa.Table, list[tuple[str, Quarantined]]]:
    """Build the rows of several decoded objects; returns (table, records to quarantine)."""
    return build_rows(objects)


def build_rows(
    objects: list[tuple[str, Decoded]], builder: TableBuilder | None = None
) -> tuple[pa.Table, list[tuple[str, Quarantined]]]:
    """The rows of ``objects`` (already added to ``builder`` when given), isolated by construction.

    Building fails only on a value no decoder should have let through; whatever the exception,
    each record is then built on its own and only those that cannot be are quarantined. (Memory
    errors and the like included: the retry holds one record at a time.)
    """
    try:
        if builder is None:
            builder = TableBuilder()
            for source, decoded in objects:
                builder.add(source, decoded)
        return builder.finish()
    except Exception:  # by construction: whatever went wrong, isolate it record by record
        del builder
    survivors: list[tuple[str, Decoded]] = []
    quarantined: list[tuple[str, Quarantined]] = []
    for source, decoded in objects:
        kept = Decoded()
        for position, (index, record) in enumerate(zip(decoded.indexes, decoded.records, strict=True)):
            single = Decoded(records=[record], indexes=[index])
            extra = decoded.extras.get(position)
            if extra:
                single.extras[0] = extra
            try:
                one = TableBuilder()
                one.add(source, single)
                one.finish()
            except Exception as exc:
                raw = _raw_record(record, extra)
                quarantined.append((source, Quarantined(index, f"cannot build row: {type(exc).__name__}: {exc}", raw)))
                continue
            kept.add(index, record, extra)
        survivors.append((source, kept))
    builder = TableBuilder()
    for source, decoded in survivors:
        builder.add(source, decoded)
    table, dropped = builder.finish()
    return table, quarantined + dropped


def _raw_record(record: Any, extra: dict[str, Any] | None) -> str:
    """A typed record (and its extra) as JSON text, for the quarantine; never raises."""
    try:
        original = original_bytes(extra or {})
        if original is not None:
            return original.decode("utf-8", "surrogateescape")
        raw = encode(record)
        if extra:
            merged = json.loads(raw.decode("utf-8", "surrogateescape"))
            merged.update(extra)
            return dumps_json(merged).decode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "surrogateescape")
    except Exception as exc:
        return f"<record could not be re-serialised: {type(exc).__name__}>"


def with_partition(table: pa.Table) -> pa.Table:
    """Append the ``event_date`` key: the event's own UTC date, never the folder's."""
    dates = pc.cast(pc.floor_temporal(table["eventTime"], unit="day"), pa.date32())
    return table.append_column(pa.field(PARTITION_COLUMN, pa.date32()), dates)
