"""Bytes of one log object → records. Sniffs the content, never trusts the extension.

Accepted: gzip or plain; a CloudTrail ``{"Records": [...]}`` object, a top-level JSON array of
records, or JSON Lines. Digest files and other JSON documents are *skipped* (with a reason);
a corrupt gzip or truncated JSON makes the object *failed* (:class:`ObjectError`), so that a later
run retries it. A single record that is not a JSON object is quarantined, the rest go on.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from isal import igzip

from analyzer.ingest.records import (
    coerce_record,
    decode_log_file,
    decode_raw_array,
    decode_raw_log_file,
    decode_record,
    decode_record_array,
    dumps_json,
)

WHITESPACE = b" \t\r\n"
LARGE_OBJECT_BYTES = 64 * 1024 * 1024
DIGEST_MARKERS = ("digestStartTime", "digestS3Object", "digestPublicKeyFingerprint")


class ObjectError(Exception):
    """The object cannot be read at all (corrupt compression, malformed JSON)."""


@dataclass
class Quarantined:
    """A record that cannot be placed in the dataset, kept raw with its reason."""

    record_index: int
    reason: str
    raw: str


@dataclass
class Decoded:
    """What one object holds: typed records, their extras, and what could not be placed."""

    records: list[Any] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    extras: dict[int, dict[str, Any]] = field(default_factory=dict)  # position in records → extra
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: str | None = None  # reason, when the object is not a CloudTrail log
    warnings: list[str] = field(default_factory=list)
    uncompressed_bytes: int = 0

    def add(self, index: int, record: Any, extra: dict[str, Any] | None = None) -> None:
        if extra:
            self.extras[len(self.records)] = extra
        self.records.append(record)
        self.indexes.append(index)


def decompress(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return igzip.decompress(data)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ObjectError(f"corrupt gzip: {exc}") from exc


def decode_parts(data: bytes, part_records: int = 16_384) -> Iterator[Decoded]:
    """Decode one object in parts of at most ``part_records`` records where its size calls for it.

    A very large ``{"Records": [...]}`` object (over LARGE_OBJECT_BYTES uncompressed) is split
    into raw records first and decoded part by part, so memory holds the text plus one part's
    records rather than every record at once. Everything else is decoded whole.
    """
    raw = decompress(data)
    del data
    if len(raw) <= LARGE_OBJECT_BYTES:
        yield decode_object(raw)
        return
    try:
        start = _first_non_space(raw)
        is_object = raw[start : start + 1] == b"{"
        raws = decode_raw_log_file(raw).Records if is_object else decode_raw_array(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        yield decode_object(raw)  # not a plain log file (JSON Lines, damaged...): whole, as usual
        return
    for first in range(0, len(raws), part_records):
        part = Decoded(uncompressed_bytes=len(raw) if first == 0 else 0)
        for index in range(first, min(first + part_records, len(raws))):
            text = bytes(raws[index])
            try:
                part.add(index, decode_record(text))
            except (msgspec.ValidationError, msgspec.DecodeError):
                _add_generic(part, index, json.loads(text.decode("utf-8", "surrogateescape")))
        yield part


def decode_object(data: bytes) -> Decoded:
    """Decode one object's bytes (gzip or plain) in one piece."""
    raw = decompress(data)
    out = Decoded(uncompressed_bytes=len(raw))
    start = _first_non_space(raw)
    if start < 0:
        out.skipped = "empty file"
        return out
    first = raw[start : start + 1]
    if first not in (b"{", b"["):
        out.skipped = "not JSON (not a CloudTrail log)"
        return out
    try:  # fast path: the whole file in one strict decode
        records = decode_log_file(raw).Records if first == b"{" else decode_record_array(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        _decode_generic(raw, out)
        return out
    out.records = records
    out.indexes = list(range(len(records)))
    return out


def _first_non_space(raw: bytes) -> int:
    for i in range(min(len(raw), 4096)):
        if raw[i] not in WHITESPACE:
            return i
    stripped = raw.lstrip(WHITESPACE)
    return len(raw) - len(stripped) if stripped else -1


def _decode_generic(raw: bytes, out: Decoded) -> None:
    """The lenient path: Python's json (accepts lone surrogates), record by record."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        out.warnings.append(f"invalid UTF-8 at byte {exc.start}: undecodable bytes kept as escapes")
        text = raw.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise ObjectError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                + (" (truncated file?)" if exc.pos >= len(text.rstrip()) - 1 else "")
            ) from exc
        _decode_json_lines(text, out)
        return
    if isinstance(doc, dict):
        if "Records" in doc:
            records = doc["Records"]
            if not isinstance(records, list):
                raise ObjectError(f"'Records' is a {type(records).__name__}, not an array")
        elif any(marker in doc for marker in DIGEST_MARKERS):
            out.skipped = "CloudTrail digest file"
            return
        elif any(key in doc for key in ("eventTime", "eventID", "eventName")):
            records = [doc]  # a single record (JSON Lines with one line)
        else:
            out.skipped = "not a CloudTrail log: JSON object without 'Records'"
            return
    else:
        records = doc
    for index, record in enumerate(records):
        _add_generic(out, index, record)


def _decode_json_lines(text: str, out: Decoded) -> None:
    index = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.add(index, decode_record(line.encode("utf-8", "surrogateescape")))
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeEncodeError):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                out.quarantined.append(Quarantined(index, f"line {number}: invalid JSON: {exc.msg}", line))
                index += 1
                continue
            _add_generic(out, index, record)
        index += 1


def _add_generic(out: Decoded, index: int, record: Any) -> None:
    if not isinstance(record, dict):
        out.quarantined.append(
            Quarantined(index, f"record is a JSON {type(record).__name__}, not an object",
                        dumps_json(record).decode())
        )
        return
    typed, extra = coerce_record(record)
    out.add(index, typed, extra)
