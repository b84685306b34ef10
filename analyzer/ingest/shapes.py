"""CloudTrail records in the other shapes they travel in: unwrapped, decoded like any record, the wrapper kept.

Sniffed from the content (never the file name), and only where the plain decoder found no
CloudTrail log (so the ``{"Records": [...]}`` path never pays for it):

- ``eventbridge``: EventBridge events (``detail-type`` "AWS API Call via CloudTrail", "AWS Console
  Sign In via CloudTrail", ...) whose ``detail`` is the record: one per file, a JSON array of them,
  JSON Lines, or run together without newlines (Firehose).
- ``cloudwatch-logs-subscription``: a CloudWatch Logs subscription payload (``DATA_MESSAGE``, its
  ``logEvents[].message`` the record as a JSON string), gzipped, several gzip members or documents
  run together (Firehose), or Lambda's ``{"awslogs": {"data": base64}}``; a ``CONTROL_MESSAGE`` is
  skipped (not a log).
- ``cloudwatch-logs-events``: ``aws logs filter-log-events`` / ``get-log-events`` output
  (``{"events": [{"timestamp", "message", ...}]}``).
- ``cloudwatch-logs-export``: a CloudWatch Logs export to S3, lines of ``<ISO time> <message>``.
- ``lookup-events``: ``aws cloudtrail lookup-events`` output (``{"Events": [{"CloudTrailEvent":
  "<JSON>", ...}]}``).
- ``lake-query-results``: CloudTrail Lake ``get-query-results`` output whose rows hold the
  ``eventJson`` column (``SELECT eventJson FROM ...``), and a saved result file (CSV with that column).

The record inside goes through the same decoder as any other (same columns, same quarantine by
index); what the wrapper adds (the envelope, the log event's id and timestamp...) is kept in
``extra`` under :data:`WRAPPER_KEY`: :func:`wrapper_of` gives it back and :func:`rewrap` rebuilds
the wrapped item, while ``rebuild_record`` gives the CloudTrail record alone. A wrapped item that is
not a CloudTrail record (an EventBridge event of another kind, a log line that is not JSON) is
quarantined with its reason, or, when nothing in the object is a CloudTrail record, the object is
skipped with it.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from collections import Counter
from typing import Any

import msgspec

from analyzer.ingest import decode

#: The key in ``extra`` that holds what a record's wrapper adds: ``{"shape", "key", "envelope",
#: "item"}``. A record that has this key itself keeps its original bytes (as with ``ORIGINAL_KEY``),
#: so the key is never ambiguous.
WRAPPER_KEY = "_analyzer_wrapper"

EVENTBRIDGE = "eventbridge"
CWL_SUBSCRIPTION = "cloudwatch-logs-subscription"
CWL_EVENTS = "cloudwatch-logs-events"
CWL_EXPORT = "cloudwatch-logs-export"
LOOKUP_EVENTS = "lookup-events"
LAKE_RESULTS = "lake-query-results"

_LABELS = {
    EVENTBRIDGE: "EventBridge event",
    CWL_SUBSCRIPTION: "CloudWatch Logs log event",
    CWL_EVENTS: "CloudWatch Logs log event",
    CWL_EXPORT: "CloudWatch Logs export line",
    LOOKUP_EVENTS: "lookup-events event",
    LAKE_RESULTS: "CloudTrail Lake result row",
}
RECORD_KEYS = ("eventVersion", "eventID", "eventTime", "eventName")
#: Byte strings one of which a JSON Lines document must hold before it is sniffed as a wrapper.
MARKERS = (b'"detail-type"', b'"logEvents"', b'"awslogs"', b'"events"', b'"Events"', b'"QueryResultRows"')
_EXPORT_LINE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (.*)", re.DOTALL)
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_value = msgspec.json.decode
_MSGSPEC_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def _shape(fields: dict[str, Any]) -> str | None:
    """The wrapper shape of a JSON object's top-level keys (None: a record, or something else)."""
    if "eventVersion" in fields or "eventTime" in fields or "Records" in fields:
        return None
    if "detail-type" in fields and "detail" in fields:
        return EVENTBRIDGE
    if ("messageType" in fields and _is_array(fields.get("logEvents"))) or "data" in (
        _object(fields.get("awslogs")) or {}
    ):
        return CWL_SUBSCRIPTION
    if _is_array(fields.get("Events")):
        return LOOKUP_EVENTS
    if _is_array(fields.get("QueryResultRows")):
        return LAKE_RESULTS
    if _is_array(fields.get("events")):
        first = _first(fields["events"])
        if isinstance(first, dict) and "message" in first:
            return CWL_EVENTS
    return None


def _is_array(value: Any) -> bool:
    if isinstance(value, msgspec.Raw):
        return memoryview(value)[:1] == b"["  # msgspec keeps a raw value without surrounding space
    return isinstance(value, list)


def _first(value: Any) -> Any:
    items = _plain(value)
    return items[0] if isinstance(items, list) and items else None


def _plain(value: Any) -> Any:
    """A Python value from either mode (msgspec.Raw or an already parsed value)."""
    return _value(value) if isinstance(value, msgspec.Raw) else value


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object as its fields (values kept raw where they came raw), or None."""
    if isinstance(value, msgspec.Raw):
        try:
            return _fields(value)
        except _MSGSPEC_ERRORS:
            return None
    return value if isinstance(value, dict) else None


def _bytes(value: Any) -> bytes:
    return bytes(value) if isinstance(value, msgspec.Raw) else decode.dumps_json(value)


def looks_wrapped(document: bytes) -> bool:
    """Cheap test before a JSON Lines document is sniffed (most lines are plain records)."""
    return any(marker in document for marker in MARKERS)


def is_wrapped(document: bytes) -> bool:
    """True when ``document`` (one JSON value) is one of the wrapper shapes."""
    fields = _parse(document)
    return fields is not None and _shape(fields) is not None


def _parse(document: bytes) -> dict[str, Any] | None:
    """A JSON object's fields: raw where msgspec reads it, else parsed by Python's json."""
    return _object(msgspec.Raw(document)) or _lenient(document)


class _Unwrap:
    """Adds the records found in wrappers to one :class:`~analyzer.ingest.decode.Decoded`."""

    def __init__(self, out: decode.Decoded, index: int = 0) -> None:
        self.out = out
        self.index = index
        self.problems: Counter[str] = Counter()
        self.foreign: list[str] = []
        self.skipped: list[str] = []

    def record(self, text: bytes, wrapper: dict[str, Any], item: bytes | str, label: str) -> None:
        """Decode one record as the plain decoder does; on success attach its wrapper."""
        out, index = self.out, self.index
        self.index += 1
        placed, held = len(out.records), len(out.quarantined)
        decode._decode_record(out, index, text, self.problems)
        if len(out.records) > placed:
            out.extras[placed] = {**out.extras.get(placed, {}), WRAPPER_KEY: wrapper}
        for quarantined in out.quarantined[held:]:
            quarantined.reason = f"{label}: {quarantined.reason}"
            quarantined.raw = item if isinstance(item, str) else item.decode("utf-8", "surrogateescape")

    def reject(self, reason: str, item: bytes | str) -> None:
        """An item of the wrapper that is not a CloudTrail record: quarantined, named."""
        self.out.quarantine(self.index, reason, item)
        self.index += 1
        self.foreign.append(reason)

    def message(self, message: Any, wrapper: dict[str, Any], item: bytes | str, label: str) -> None:
        """A record given as a JSON string (a log event's message, CloudTrailEvent, eventJson)."""
        if not isinstance(message, str):
            self.reject(f"{label}: {wrapper['key']} is not a string", item)
            return
        if not message.lstrip(" \t\r\n").startswith("{"):
            self.reject(f"{label}: the {wrapper['key']} is not JSON (not a CloudTrail record)", item)
            return
        # a lone surrogate becomes its JSON escape: the same JSON text, now valid UTF-8
        text = message.encode("utf-8", "backslashreplace")
        if wrapper["shape"] in (CWL_SUBSCRIPTION, CWL_EVENTS, CWL_EXPORT) and _is_record(text) is False:
            self.reject(f"{label}: the message is a JSON object but not a CloudTrail record", item)
            return
        self.record(text, wrapper, item, label)

    def finish(self) -> None:
        self.out.warnings.extend(decode._problem_warnings(self.problems))


def _is_record(text: bytes) -> bool | None:
    """Whether a JSON object's keys are a CloudTrail record's (None: not parseable here)."""
    try:
        keys = _fields(text)
    except _MSGSPEC_ERRORS:
        return None
    return any(key in keys for key in RECORD_KEYS)


def _wrapper(shape: str, key: str, envelope: dict[str, Any] | None = None, item: Any = None) -> dict[str, Any]:
    wrapper: dict[str, Any] = {"shape": shape, "key": key}
    if envelope:
        wrapper["envelope"] = envelope
    if item is not None:
        wrapper["item"] = item
    return wrapper


def _rest(fields: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: _plain(value) for name, value in fields.items() if name != key}


def _eventbridge(u: _Unwrap, fields: dict[str, Any], item: bytes) -> None:
    envelope = _rest(fields, "detail")
    kind, source = envelope.get("detail-type"), envelope.get("source")
    detail = fields.get("detail")
    text = _bytes(detail) if detail is not None else b""
    via_cloudtrail = isinstance(kind, str) and kind.endswith("via CloudTrail")
    if not text.lstrip(b" \t\r\n").startswith(b"{") or not (via_cloudtrail or _is_record(text)):
        u.reject(f"EventBridge event {_short(kind)} from {_short(source)}: its detail is not a CloudTrail record", item)
        return
    u.record(text, _wrapper(EVENTBRIDGE, "detail", envelope), item, _LABELS[EVENTBRIDGE])


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _subscription(u: _Unwrap, fields: dict[str, Any]) -> None:
    if "awslogs" in fields:  # Lambda's event: the payload, gzipped and base64-encoded
        _lambda(u, fields)
        return
    envelope = _rest(fields, "logEvents")
    if envelope.get("messageType") == "CONTROL_MESSAGE":
        u.skipped.append("CloudWatch Logs CONTROL_MESSAGE (the subscription's connectivity check, not a log)")
        return
    _log_events(u, fields.get("logEvents"), CWL_SUBSCRIPTION, envelope)


def _lambda(u: _Unwrap, fields: dict[str, Any]) -> None:
    awslogs = _object(fields["awslogs"]) or {}
    data = _plain(awslogs.get("data"))
    try:
        if not isinstance(data, str):
            raise ValueError("not a string")
        members = decode.decompress(base64.b64decode(data, validate=True))
    except (ValueError, binascii.Error, decode.ObjectError) as exc:
        u.reject(f"Lambda CloudWatch Logs event: awslogs.data is not base64 gzip ({exc})", _bytes(fields["awslogs"]))
        return
    for member in members:
        if not _document(u, member):
            u.reject("Lambda CloudWatch Logs event: awslogs.data is not a subscription payload", member)


def _log_events(u: _Unwrap, events: Any, shape: str, envelope: dict[str, Any]) -> None:
    items = _items(events, "logEvents" if shape == CWL_SUBSCRIPTION else "events")
    for raw in items:
        event = _object(raw)
        text = _bytes(raw)
        if event is None:
            u.reject(f"{_LABELS[shape]}: not a JSON object", text)
            continue
        wrapper = _wrapper(shape, "message", envelope, _rest(event, "message"))
        u.message(_plain(event.get("message")), wrapper, text, _LABELS[shape])


def _items(value: Any, name: str) -> list[Any]:
    if isinstance(value, msgspec.Raw):
        try:
            value = msgspec.json.decode(value, type=list[msgspec.Raw])
        except _MSGSPEC_ERRORS:
            value = None
    if not isinstance(value, list):
        raise decode.ObjectError(f"'{name}' is not an array")
    return value


def _lookup_events(u: _Unwrap, fields: dict[str, Any]) -> None:
    envelope = _rest(fields, "Events")
    for raw in _items(fields["Events"], "Events"):
        event = _object(raw)
        text = _bytes(raw)
        if event is None or "CloudTrailEvent" not in event:
            u.reject(f"{_LABELS[LOOKUP_EVENTS]}: no CloudTrailEvent", text)
            continue
        wrapper = _wrapper(LOOKUP_EVENTS, "CloudTrailEvent", envelope, _rest(event, "CloudTrailEvent"))
        u.message(_plain(event["CloudTrailEvent"]), wrapper, text, _LABELS[LOOKUP_EVENTS])


def _lake(u: _Unwrap, fields: dict[str, Any]) -> None:
    envelope = _rest(fields, "QueryResultRows")
    for raw in _items(fields["QueryResultRows"], "QueryResultRows"):
        row, text = _plain(raw), _bytes(raw)
        found = _event_json_cell(row)
        if found is None:
            u.reject(f"{_LABELS[LAKE_RESULTS]}: no eventJson column (query SELECT eventJson to export records)", text)
            continue
        position, key = found
        cells = [cell for i, cell in enumerate(row) if i != position]
        wrapper = _wrapper(LAKE_RESULTS, key, envelope, {"cells": cells, "position": position})
        u.message(row[position][key], wrapper, text, _LABELS[LAKE_RESULTS])


def _event_json_cell(row: Any) -> tuple[int, str] | None:
    if not isinstance(row, list):
        return None
    for position, cell in enumerate(row):
        if isinstance(cell, dict) and len(cell) == 1:
            (key,) = cell
            if key.lower() == "eventjson":
                return position, key
    return None


_DISPATCH = {
    EVENTBRIDGE: lambda u, fields, item: _eventbridge(u, fields, item),
    CWL_SUBSCRIPTION: lambda u, fields, item: _subscription(u, fields),
    CWL_EVENTS: lambda u, fields, item: _log_events(u, fields["events"], CWL_EVENTS, _rest(fields, "events")),
    LOOKUP_EVENTS: lambda u, fields, item: _lookup_events(u, fields),
    LAKE_RESULTS: lambda u, fields, item: _lake(u, fields),
}


def _document(u: _Unwrap, raw: bytes) -> bool:
    """Add one JSON document's records if it is a wrapper; False when it is not one."""
    if raw.startswith(decode.BOM):
        raw = raw[len(decode.BOM) :]
    fields: dict[str, Any] | None
    try:
        fields = _fields(raw)
        if not decode._nothing_collapsed(raw, fields):
            u.out.warnings.append("a wrapper gives one of its own keys twice: the last value is kept")
    except _MSGSPEC_ERRORS:
        fields = _lenient(raw)  # what msgspec refuses (lone surrogates, invalid UTF-8, NaN...)
    except RecursionError as exc:
        raise decode.ObjectError(decode.NESTING_REASON) from exc
    shape = _shape(fields) if fields is not None else None
    if shape is None or fields is None:
        return False
    try:
        _DISPATCH[shape](u, fields, raw)
    except RecursionError as exc:
        raise decode.ObjectError(decode.NESTING_REASON) from exc
    return True


def _lenient(raw: bytes) -> dict[str, Any] | None:
    """Python's json keeps lone surrogates (the record decoder then names them)."""
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _finish(u: _Unwrap, what: str) -> decode.Decoded:
    """The Decoded of a whole object: skipped when nothing in it was a CloudTrail record."""
    u.finish()
    out = u.out
    if not out.records and len(out.quarantined) == len(u.foreign):
        reasons = list(u.skipped)
        if u.foreign:
            reasons.append(f"{len(u.foreign):,} item(s) not CloudTrail records, e.g. {u.foreign[0]}")
        return decode.Decoded(skipped=f"{what}: " + ("; ".join(reasons) or "no records"), warnings=out.warnings)
    out.warnings.extend(u.skipped)
    return out


def decode_document(raw: bytes) -> decode.Decoded | None:
    """One JSON object in one of the wrapper shapes → its records (None: not a wrapper)."""
    u = _Unwrap(decode.Decoded())
    if not _document(u, raw):
        return None
    return _finish(u, "not a CloudTrail log: a wrapper without CloudTrail records")


def decode_array(raws: list[Any]) -> decode.Decoded:
    """A JSON array of wrapped items (EventBridge events...) and plain records, each in place."""
    u = _Unwrap(decode.Decoded())
    for raw in raws:
        text = bytes(raw)
        fields = _parse(text)
        if fields is not None and _shape(fields) == EVENTBRIDGE:
            _eventbridge(u, fields, text)
        elif not (fields is not None and _shape(fields) is not None and _document(u, text)):
            decode._decode_record(u.out, u.index, text, u.problems)
            u.index += 1
    return _finish(u, "not a CloudTrail log: an array without CloudTrail records")


def merge(out: decode.Decoded, offset: int, document: bytes) -> int | None:
    """Add a wrapper found on a JSON Lines line; how many indexes it used (None: not a wrapper)."""
    u = _Unwrap(out, offset)
    if not _document(u, document):
        return None
    u.finish()
    out.warnings.extend(f"skipped: {reason}" for reason in u.skipped)
    return u.index - offset


def decode_lines(raw: bytes) -> decode.Decoded | None:
    """A text file that is not JSON: a CloudWatch Logs export or a Lake result CSV (None: neither)."""
    first = raw.split(b"\n", 1)[0].strip(b"\r")
    if _EXPORT_LINE.match(first):
        return _export_lines(raw)
    if b"eventjson" in first.lower():
        return _lake_csv(raw)
    return None


def _export_lines(raw: bytes) -> decode.Decoded:
    u = _Unwrap(decode.Decoded())
    for number, line in enumerate(raw.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        match = _EXPORT_LINE.match(line)
        label = f"line {number}"
        if match is None:
            u.reject(f"{label}: not '<timestamp> <message>' (a CloudWatch Logs export line)", line)
            continue
        wrapper = _wrapper(CWL_EXPORT, "message", item={"timestamp": match[1].decode()})
        u.message(match[2].decode("utf-8", "surrogateescape"), wrapper, line, label)
    return _finish(u, "not a CloudTrail log: a CloudWatch Logs export without CloudTrail records")


def _lake_csv(raw: bytes) -> decode.Decoded | None:
    text = raw.decode("utf-8", "surrogateescape")
    csv.field_size_limit(decode.MAX_OBJECT_BYTES)
    try:
        rows = csv.reader(io.StringIO(text, newline=""))
        header = next(rows)
    except (csv.Error, StopIteration):
        return None
    columns = [i for i, name in enumerate(header) if name.strip().lower() == "eventjson"]
    if not columns:
        return None
    column = columns[0]
    u = _Unwrap(decode.Decoded())
    try:
        for number, row in enumerate(rows, start=2):
            label = f"CSV row {number}"
            line = _csv_line(row)
            if len(row) != len(header):
                u.reject(f"{label}: {len(row)} fields where the header has {len(header)}", line)
                continue
            item = {name: value for i, (name, value) in enumerate(zip(header, row, strict=True)) if i != column}
            u.message(row[column], _wrapper(LAKE_RESULTS, header[column], item=item), line, label)
    except csv.Error as exc:
        raise decode.ObjectError(f"invalid CSV: {exc}") from exc
    return _finish(u, "not a CloudTrail log: a CloudTrail Lake result without CloudTrail records")


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    return buffer.getvalue().rstrip("\r\n")


def wrapper_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """What the wrapper of a row's record added (``{"shape", "key", "envelope", "item"}``), or None.

    ``row`` as ``Table.to_pylist()`` gives it; ``rebuild_record(row)`` gives the record itself.
    """
    extra = json.loads(row["extra"]) if row.get("extra") else {}
    wrapper = extra.get(WRAPPER_KEY)
    return wrapper if isinstance(wrapper, dict) else None


def rewrap(record: dict[str, Any], wrapper: dict[str, Any]) -> Any:
    """The wrapped item again: the EventBridge event, the log event, the lookup event, the Lake row
    (its list of cells)...

    A record that travelled as a JSON string comes back as compact JSON text: the same value,
    not necessarily the same bytes."""
    shape, key = wrapper["shape"], wrapper["key"]
    if shape == EVENTBRIDGE:
        event = dict(wrapper.get("envelope", {}))
        event[key] = record
        return event
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    item = dict(wrapper.get("item") or {})
    if shape == LAKE_RESULTS and "cells" in item:
        cells = list(item["cells"])
        cells.insert(item["position"], {key: text})
        return cells
    item[key] = text
    return item
