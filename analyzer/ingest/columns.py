"""Typed records → one Arrow table in the canonical schema (plus the ``event_date`` key).

:class:`TableBuilder` takes each object's records right after they are decoded, while they are
still in the CPU cache, and copies every schema leaf into a plain Python list (C-level ``map``).
Every :data:`GROUP_RECORDS` records those lists become Arrow arrays, while the values they point
to are still in the cache too (measured: converting a value whose object has left the cache costs
several times more than the conversion itself; the chunk's arrays are only concatenated at the
end). ``eventTime`` is parsed vectorised; the rare odd format falls back to Python and keeps its
original text in ``extra``. A record whose time cannot be read cannot be placed in a partition: it
is returned for quarantine.

Should building a table fail anyway, whatever the exception (:func:`build_rows`), the rows are
built again record by record and only the records that cannot be built are quarantined.
"""

from __future__ import annotations

import json
from array import array
from datetime import UTC, datetime
from itertools import accumulate, repeat
from operator import is_not, length_hint
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
#: Records converted to Arrow at once: small enough that their values are still in the CPU cache
#: (a few MB of Python objects), large enough that the ~50 conversions' own cost is spread thin.
GROUP_RECORDS = 1_024


def _transpose(structs: Any) -> list[tuple[Any, ...]]:
    """The field values of many structs, one tuple per field (C-level)."""
    return list(zip(*map(astuple, structs), strict=True))


def _blob_array(values: list[Any]) -> pa.Array:
    """JSON texts (``msgspec.Raw``, or None for absent) as a string array, without a bytes object
    per value: the texts are joined once and their offsets accumulated, both in C."""
    data = b"".join(filter(None, values))  # a JSON text is never empty
    offsets = array("q", accumulate(map(length_hint, values), initial=0))  # None: 0
    flags = bytes(map(is_not, values, repeat(None)))
    validity = None
    if flags.count(0):
        validity = pc.cast(pa.Array.from_buffers(pa.uint8(), len(values), [None, pa.py_buffer(flags)]),
                           pa.bool_()).buffers()[1]
    blobs = pa.Array.from_buffers(pa.large_binary(), len(values),
                                  [validity, pa.py_buffer(offsets), pa.py_buffer(data)])
    return blobs.cast(pa.string())  # checks UTF-8: the decoder sends invalid UTF-8 down the lenient path


class _Leaf:
    """The values of one schema field, accumulated object by object, converted group by group."""

    def __init__(self, field: pa.Field, struct_type: Any) -> None:
        self.field = field
        self.json = is_json(field)
        self.text = field.name == "eventTime"  # kept as its text here: parsed once the chunk is complete
        self.children: list[_Leaf] = []
        if pa.types.is_struct(field.type):
            types = {f.name: f.type for f in msgspec.structs.fields(struct_type)}
            self.children = [_Leaf(child, types[child.name]) for child in field.type]
            self.empty = struct_type()
        self.values: list[Any] = []  # scalars, JSON bytes, or (for structs) validity flags
        self.arrays: list[pa.Array] = []  # the groups converted so far

    def add(self, values: tuple[Any, ...]) -> None:
        if self.children:
            present = list(map(is_not, values, repeat(None)))
            self.values.extend(present)
            if not all(present):
                values = tuple(self.empty if value is None else value for value in values)
            for child, column in zip(self.children, _transpose(values), strict=True):
                child.add(column)
        else:  # JSON blobs stay msgspec.Raw (views of the object's text) until converted
            self.values.extend(values)

    def convert(self) -> pa.Array:
        """The values not yet converted, as one array (nothing changes here: see :meth:`keep`)."""
        if self.children:
            children = [child.convert() for child in self.children]
            mask = pc.invert(pa.array(self.values, pa.bool_()))
            return pa.StructArray.from_arrays(children, fields=list(self.field.type), mask=mask)
        if self.json:
            return _blob_array(self.values)
        return pa.array(self.values, pa.string() if self.text else self.field.type)

    def keep(self, array: pa.Array) -> None:
        """Record ``array`` (from :meth:`convert`) as converted, and let its values go."""
        self.arrays.append(array)
        self._clear()

    def _clear(self) -> None:
        self.values = []
        for child in self.children:
            child._clear()

    def array(self) -> pa.ChunkedArray:
        """Every value added, converted."""
        if self.values or not self.arrays:
            self.keep(self.convert())
        return pa.chunked_array(self.arrays, self.arrays[0].type)


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
        self._pending = 0  # records added since the last conversion
        self._grouping = True

    def __len__(self) -> int:
        return len(self.sources)

    def add(self, source: str, decoded: Decoded) -> None:
        offset = len(self.sources)
        records = decoded.records
        if not records:
            return
        for leaf, column in zip(self.leaves, _transpose(records), strict=True):
            leaf.add(column)
        self.sources.extend(repeat(source, len(records)))
        self.indexes.extend(decoded.indexes)
        for position, extra in decoded.extras.items():
            self.extras[offset + position] = extra
        self._pending += len(records)
        if self._pending >= GROUP_RECORDS and self._grouping:
            self._convert()

    def _convert(self) -> None:
        """Convert the pending values of every leaf, all or none: should one conversion fail, the
        values stay as they are and :meth:`finish` meets the failure (and :func:`build_rows`
        isolates it record by record)."""
        try:
            arrays = [leaf.convert() for leaf in self.leaves]
        except Exception:
            self._grouping = False
            return
        for leaf, converted in zip(self.leaves, arrays, strict=True):
            leaf.keep(converted)
        self._pending = 0

    def finish(self) -> tuple[pa.Table, list[tuple[str, Quarantined]]]:
        """The table of every record added (with ``event_date``), and the records to quarantine."""
        columns = {leaf.field.name: leaf.array() for leaf in self.leaves}
        times, dropped = self._times(columns)
        quarantined = [(self.sources[i], q) for i, q in dropped.items()]
        if dropped:
            keep = [i for i in range(len(self.sources)) if i not in dropped]
            rows = pa.array(keep, pa.int64())  # typed: an empty keep list has no type
            columns = {name: column.take(rows) for name, column in columns.items()}
            self.sources = [self.sources[i] for i in keep]
            self.indexes = [self.indexes[i] for i in keep]
            self.extras = {new: self.extras[old] for new, old in enumerate(keep) if old in self.extras}
            times = times.take(rows)
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

    def _times(self, columns: dict[str, pa.ChunkedArray]) -> tuple[pa.Array, dict[int, Quarantined]]:
        texts = columns["eventTime"].combine_chunks()
        times = pc.strptime(texts, format=TIME_FORMAT, unit="us", error_is_null=True)
        dropped: dict[int, Quarantined] = {}
        if not times.null_count:
            return times.cast(TIME_TYPE), dropped
        fixed = times.to_pylist()
        for i in pc.indices_nonzero(times.is_null()).to_pylist():
            text = texts[i].as_py()
            parsed = _parse_time(text) if isinstance(text, str) else None
            if parsed is None:
                reason = "record has no eventTime" if text is None else f"unreadable eventTime {text!r}"
                dropped[i] = Quarantined(self.indexes[i], reason, self._raw_at(columns, i))
                continue
            fixed[i] = parsed
            if parsed.strftime(TIME_FORMAT) != text:
                self.extras.setdefault(i, {})["eventTime"] = text
        return pa.array(fixed, TIME_TYPE), dropped

    def _raw_at(self, columns: dict[str, pa.ChunkedArray], i: int) -> str:
        """Record ``i`` as JSON text, to quarantine it: its original where its row kept it."""
        extra = self.extras.get(i, {})
        original = original_bytes(extra)
        if original is not None:
            return original.decode("utf-8", "surrogateescape")
        try:
            return dumps_json(self._record_at(columns, i)).decode()
        except Exception as exc:  # e.g. nested too deep to re-serialise: still quarantined, reason kept
            return f"<record {self.indexes[i]} could not be re-serialised: {type(exc).__name__}>"

    def _record_at(self, columns: dict[str, pa.ChunkedArray], i: int) -> dict[str, Any]:
        """Record ``i`` rebuilt from the converted columns (to quarantine it raw)."""

        def value(field: pa.Field, item: Any) -> Any:
            if pa.types.is_struct(field.type):
                return {child.name: value(child, item[child.name]) for child in field.type
                        if item[child.name] is not None}
            return json.loads(item) if is_json(field) else item

        row = {f.name: columns[f.name][i].as_py() for f in EVENT_FIELDS}
        record = {f.name: value(f, row[f.name]) for f in EVENT_FIELDS if row[f.name] is not None}
        record.update(self.extras.get(i, {}))
        return record


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
