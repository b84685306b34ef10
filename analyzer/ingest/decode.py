"""Bytes of one log object → records. Sniffs the content, never trusts the extension.

Accepted: gzip (every member of a multi-member file) or plain, with or without a UTF-8 BOM; a
CloudTrail ``{"Records": [...]}`` object, a top-level JSON array of records, or JSON Lines; where
none of these is found, the other shapes CloudTrail travels in (EventBridge events, CloudWatch Logs
payloads and exports, lookup-events and Lake results: :mod:`analyzer.ingest.shapes`). Digest
files and other JSON documents are *skipped* (with a reason); a corrupt or truncated gzip,
truncated JSON, an object larger than the cap (``max_bytes``, default :data:`MAX_OBJECT_BYTES`
uncompressed, decompressed as a stream so memory stays bounded) or nested deeper than the parsers
go (about 1,000 levels) makes the object *failed* (:class:`ObjectError`), so that a later run
retries it.

The whole file is decoded strictly in one call (msgspec, fast). When that fails, the file is split
into raw records and each is decoded strictly on its own: only the records that need it take the
lenient path, and one that cannot be placed is quarantined (with its index and raw text) while the
rest go on. A strict decode is checked for what msgspec does not report: invalid UTF-8 inside a
raw blob, and a key given twice (msgspec keeps the last silently); such records take the lenient
path, which keeps the original (:data:`~analyzer.ingest.records.ORIGINAL_KEY`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from isal import isal_zlib

from analyzer.ingest.records import (
    ORIGINAL_KEY,
    LenientParser,
    coerce_record,
    decode_log_file,
    decode_raw_array,
    decode_raw_log_file,
    decode_record,
    decode_record_array,
    dumps_json,
    encode,
    keep_original,
)

WHITESPACE = b" \t\r\n"
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
LARGE_OBJECT_BYTES = 64 * 1024 * 1024
#: The default cap on one object's uncompressed size (``ingest_objects(max_object_bytes=)``,
#: ``--max-object-size``). CloudTrail delivers a file about every five minutes per account and
#: region, far below this; anything larger is failed by name rather than allowed to exhaust memory.
MAX_OBJECT_BYTES = 512 * 1024 * 1024
DECOMPRESS_STEP = 64 * 1024 * 1024  # output per decompression call: memory stays cap + one step
DIGEST_MARKERS = ("digestStartTime", "digestS3Object", "digestPublicKeyFingerprint")
NESTING_REASON = "JSON nested deeper than the parsers' limit (about 1,000 levels)"
_RECORDS_START = re.compile(r'\{\s*"Records"\s*:\s*\[')
_SPACE = re.compile(r"[ \t\r\n]*")


class ObjectError(Exception):
    """The object cannot be read at all (corrupt compression, malformed JSON, over a limit)."""


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
    content_sha256: str | None = None  # of the uncompressed content, every member (the first part only)

    def add(self, index: int, record: Any, extra: dict[str, Any] | None = None) -> None:
        if extra:
            self.extras[len(self.records)] = extra
        self.records.append(record)
        self.indexes.append(index)

    def quarantine(self, index: int, reason: str, raw: bytes | str) -> None:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")
        self.quarantined.append(Quarantined(index, reason, text))

    def shift(self, offset: int) -> None:
        """Renumber the records by ``offset`` (a later member of a multi-member gzip)."""
        if offset:
            self.indexes = [i + offset for i in self.indexes]
            for q in self.quarantined:
                q.record_index += offset

    def extend(self, part: Decoded) -> None:
        """Append a later part of the same object (its indexes already final)."""
        base = len(self.records)
        self.records.extend(part.records)
        self.indexes.extend(part.indexes)
        self.extras.update({base + position: extra for position, extra in part.extras.items()})
        self.quarantined.extend(part.quarantined)
        self.warnings.extend(part.warnings)

    def size(self) -> int:
        """How many record positions this part covers (placed or quarantined)."""
        return max([*self.indexes, *(q.record_index for q in self.quarantined)], default=-1) + 1


def decompress(data: bytes, max_bytes: int = MAX_OBJECT_BYTES, *, sha: Any = None) -> list[bytes]:
    """The uncompressed members of ``data`` (plain data: itself), at most ``max_bytes`` in all.

    ``sha`` (a :func:`hashlib.sha256` object): fed the uncompressed content as it is inflated, every
    member, while each piece is still in the CPU cache; it is then the SHA-256 a CloudTrail digest
    lists for the file (:mod:`analyzer.integrity.hashing` hashes the same bytes)."""
    if data[:2] != GZIP_MAGIC:
        if len(data) > max_bytes:
            raise ObjectError(_too_large(max_bytes))
        if sha is not None:
            sha.update(data)
        return [data]
    members: list[bytes] = []
    total = 0
    rest = data
    while rest:
        if rest[:2] != GZIP_MAGIC:
            if rest.strip(b"\0"):
                raise ObjectError(f"corrupt gzip: {len(rest)} bytes after gzip member {len(members)}")
            break  # zero padding after the last member
        member, rest = _inflate_member(rest, max_bytes - total, sha)
        if member is None:
            raise ObjectError(_too_large(max_bytes))
        total += len(member)
        members.append(member)
    return members


def _inflate_member(data: bytes, budget: int, sha: Any = None) -> tuple[bytes | None, bytes]:
    """One gzip member, streamed: (its bytes, the data after it); (None, b"") past ``budget``."""
    try:
        inflater = isal_zlib.decompressobj(31)
        chunks: list[bytes] = []
        size = 0
        pending = data
        while True:
            chunk = inflater.decompress(pending, min(DECOMPRESS_STEP, budget - size + 1))
            size += len(chunk)
            if size > budget:
                return None, b""
            if sha is not None:
                sha.update(chunk)
            chunks.append(chunk)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
            if not pending and not chunk:
                raise ObjectError("corrupt gzip: truncated (the stream ends inside a member)")
        rest = inflater.unused_data
    except ObjectError:
        raise
    except Exception as exc:  # isal raises its own IsalError, zlib-style errors, MemoryError...
        raise ObjectError(f"corrupt gzip: {type(exc).__name__}: {exc}") from exc
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), rest


def _too_large(max_bytes: int) -> str:
    cap = f"{max_bytes / 2**20:,.0f} MiB" if max_bytes >= 2**20 else f"{max_bytes:,} bytes"
    return f"larger than {cap} uncompressed (the cap: --max-object-size)"


def decode_parts(
    data: bytes, part_records: int = 16_384, *, max_bytes: int = MAX_OBJECT_BYTES
) -> Iterator[Decoded]:
    """Decode one object in parts of at most ``part_records`` records where its size calls for it.

    A very large ``{"Records": [...]}`` object (over LARGE_OBJECT_BYTES uncompressed) is split
    into raw records first and decoded part by part, so memory holds the text plus one part's
    records rather than every record at once. The first part carries the uncompressed size and
    the SHA-256 of that content (what a digest lists: :attr:`Decoded.content_sha256`).
    """
    sha = hashlib.sha256()
    members = decompress(data, max_bytes, sha=sha)
    del data
    total = sum(map(len, members))
    content_sha256 = sha.hexdigest()
    if len(members) > 1 and all(_looks_like_document(m) for m in members):
        yield from _decode_members(members, part_records, total, content_sha256)
        return
    text = members[0] if len(members) == 1 else b"".join(members)
    del members
    first = True
    for part in _decode_text(text, part_records):
        if first:
            part.uncompressed_bytes, part.content_sha256, first = total, content_sha256, False
        yield part


def _decode_members(members: list[bytes], part_records: int, total: int, content_sha256: str | None = None
                    ) -> Iterator[Decoded]:
    """A multi-member gzip (``cat a.gz b.gz``): each member is a log file of its own."""
    parts: list[Decoded] = []
    skips: list[str] = []
    offset = 0
    for number, member in enumerate(members, start=1):
        try:
            decoded = list(_decode_text(member, part_records))
        except ObjectError as exc:
            raise ObjectError(f"gzip member {number}: {exc}") from exc
        if decoded[0].skipped:
            skips.append(f"gzip member {number} skipped: {decoded[0].skipped}")
            continue
        for part in decoded:
            part.shift(offset)
        offset = max(part.size() for part in decoded)
        parts.extend(decoded)
    if not parts:
        yield Decoded(skipped="; ".join(skips), uncompressed_bytes=total, content_sha256=content_sha256)
        return
    parts[0].uncompressed_bytes, parts[0].content_sha256 = total, content_sha256
    parts[0].warnings.extend(skips)
    yield from parts


def _looks_like_document(member: bytes) -> bool:
    start = _first_non_space(member)
    return start >= 0 and member[start : start + 1] in (b"{", b"[")


def decode_object(data: bytes, *, max_bytes: int = MAX_OBJECT_BYTES) -> Decoded:
    """Decode one object's bytes (gzip or plain) in one piece."""
    parts = list(decode_parts(data, 1 << 62, max_bytes=max_bytes))
    if len(parts) == 1:
        return parts[0]
    whole = parts[0]
    for part in parts[1:]:
        whole.extend(part)
    return whole


def _decode_text(raw: bytes, part_records: int) -> Iterator[Decoded]:
    """One JSON text (a plain object or one gzip member) → parts."""
    if raw.startswith(BOM):
        raw = raw[len(BOM) :]
    start = _first_non_space(raw)
    if start < 0:
        yield Decoded(skipped="empty file")
        return
    first = raw[start : start + 1]
    if first not in (b"{", b"["):  # a CloudWatch Logs export, a Lake result CSV, or not a log
        lines = _shapes().decode_lines(raw)
        yield lines if lines is not None else Decoded(skipped="not JSON (not a CloudTrail log)")
        return
    if len(raw) <= LARGE_OBJECT_BYTES:
        records = _strict(raw, first)
        if records is not None:  # the fast path: the whole file in one strict decode
            yield Decoded(records=records, indexes=list(range(len(records))))
            return
    raws = _split(raw, first)
    if raws is None:
        yield _decode_generic(raw)
        return
    if first == b"[" and raws and _shapes().is_wrapped(bytes(raws[0])):  # EventBridge events...
        yield _shapes().decode_array(raws)
        return
    for begin in range(0, max(len(raws), 1), part_records):
        part = Decoded()
        problems: Counter[str] = Counter()
        for index in range(begin, min(begin + part_records, len(raws))):
            _decode_record(part, index, bytes(raws[index]), problems)
        part.warnings.extend(_problem_warnings(problems))
        yield part


def _strict(raw: bytes, first: bytes) -> list[Any] | None:
    """Every record of the file in one strict decode, or None where the file needs a closer look."""
    try:
        document: Any = decode_log_file(raw) if first == b"{" else decode_record_array(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if not _valid_utf8(raw) or not _nothing_collapsed(raw, document):
        return None  # invalid UTF-8 inside a raw blob, or a key given twice: record by record
    return document.Records if first == b"{" else document


def _valid_utf8(raw: bytes) -> bool:
    """msgspec checks the strings it decodes, not the raw blobs it keeps."""
    if raw.isascii():
        return True
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def _nothing_collapsed(raw: bytes, decoded: Any) -> bool:
    """True when no key of ``raw`` was given twice (msgspec keeps the last one silently).

    msgspec writes every string in its shortest JSON form (checked for every code point), so the
    text of what was decoded, re-encoded, is never longer than the original outside whitespace;
    it is as long exactly when every token was written canonically and nothing was dropped. So
    equal lengths prove that no key was collapsed; otherwise the caller looks record by record.
    """
    canonical = encode(decoded)
    if len(canonical) == len(raw):
        return True
    return len(raw) - _whitespace(raw) == len(canonical) - _whitespace(canonical)


def _whitespace(text: bytes) -> int:
    return text.count(b" ") + text.count(b"\n") + text.count(b"\r") + text.count(b"\t")


def _split(raw: bytes, first: bytes) -> list[Any] | None:
    """The raw text of every record, or None when the file is not a plain log file or array."""
    try:
        return decode_raw_log_file(raw).Records if first == b"{" else decode_raw_array(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _split_lenient(raw)
    except RecursionError as exc:
        raise ObjectError(NESTING_REASON) from exc


def _split_lenient(raw: bytes) -> list[Any] | None:
    """Record texts found by Python's json, which takes what msgspec refuses (lone surrogates...).

    None when the file is not ``{"Records": [...]}`` (with Records first) or ``[...]``."""
    text = raw.decode("utf-8", "surrogateescape")
    start = _SPACE.match(text).end()  # type: ignore[union-attr]
    opening = _RECORDS_START.match(text, start)
    position = opening.end() if opening else start + 1 if text.startswith("[", start) else -1
    if position < 0:
        return None
    parser = LenientParser()
    spans: list[Any] = []
    position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
    try:
        while not text.startswith("]", position):
            _, end = parser.parse(text, position)
            spans.append(text[position:end].encode("utf-8", "surrogateescape"))
            position = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", position):
                position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
            elif not text.startswith("]", position):
                return None
    except json.JSONDecodeError:
        return None  # the generic path names the error
    except RecursionError as exc:
        raise ObjectError(f"{NESTING_REASON} in record {len(spans)}") from exc
    tail = text[position + 1 :].strip(" \t\r\n")
    if tail != ("}" if opening else ""):
        return None  # other top-level keys after Records, or trailing data: the generic path
    return spans


def _decode_record(part: Decoded, index: int, text: bytes, problems: Counter[str]) -> None:
    """Decode one record into ``part``; whatever goes wrong quarantines this record alone."""
    try:
        try:
            record = decode_record(text)
        except (msgspec.ValidationError, msgspec.DecodeError):
            record = None
        if record is not None and _valid_utf8(text) and _nothing_collapsed(text, record):
            part.add(index, record)
            return
        parser = LenientParser()
        string = text.decode("utf-8", "surrogateescape")
        value, end = parser.parse(string, _SPACE.match(string).end())  # type: ignore[union-attr]
        if string[end:].strip(" \t\r\n"):
            raise json.JSONDecodeError("Extra data", string, end)
        if record is not None and not (parser.problems & {"a duplicate key", "invalid UTF-8 or a lone surrogate"}):
            part.add(index, record)  # strict after all (only written non-canonically): blobs verbatim
            return
        _add_lenient(part, index, value, text, parser.problems, problems)
    except json.JSONDecodeError as exc:
        part.quarantine(index, f"invalid JSON: {exc.msg}", text)
    except RecursionError:
        part.quarantine(index, NESTING_REASON, text)
    except Exception as exc:  # by construction: one record never fails its object
        part.quarantine(index, f"cannot decode record: {type(exc).__name__}: {exc}", text)


def _add_lenient(
    part: Decoded, index: int, value: Any, text: bytes, found: set[str], problems: Counter[str]
) -> None:
    if not isinstance(value, dict):
        part.quarantine(index, f"record is a JSON {type(value).__name__}, not an object", text)
        return
    typed, extra = coerce_record(value)
    reserved = [key for key in (ORIGINAL_KEY, _shapes().WRAPPER_KEY) if key in value]
    if found or reserved:  # a record with a reserved key of its own keeps it in its original
        extra = keep_original({k: v for k, v in (extra or {}).items() if k not in reserved}, text)
        problems.update(found or {f"the key {reserved[0]}"})
    part.add(index, typed, extra)


def _problem_warnings(problems: Counter[str]) -> list[str]:
    return [f"{count:,} record(s) with {problem}: the original record is kept in extra"
            for problem, count in sorted(problems.items())]


def _first_non_space(raw: bytes) -> int:
    for i in range(min(len(raw), 4096)):
        if raw[i] not in WHITESPACE:
            return i
    stripped = raw.lstrip(WHITESPACE)
    return len(raw) - len(stripped) if stripped else -1


def _decode_generic(raw: bytes) -> Decoded:
    """The lenient path for a whole file: Python's json. JSON Lines, digests, other documents."""
    out = Decoded()
    if not _valid_utf8(raw):
        out.warnings.append("invalid UTF-8: the records concerned keep their original bytes in extra")
    text = raw.decode("utf-8", "surrogateescape")
    parser = LenientParser()
    try:
        doc, end = parser.parse(text, _SPACE.match(text).end())  # type: ignore[union-attr]
        if text[end:].strip(" \t\r\n"):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise ObjectError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                + (" (truncated file?)" if exc.pos >= len(text.rstrip()) - 1 else "")
            ) from exc
        _decode_json_lines(raw, out)
        return out
    except RecursionError as exc:
        raise ObjectError(NESTING_REASON) from exc
    if isinstance(doc, dict):
        if "Records" in doc:
            records = doc["Records"]
            if not isinstance(records, list):
                raise ObjectError(f"'Records' is a {type(records).__name__}, not an array")
        elif any(marker in doc for marker in DIGEST_MARKERS):
            out.skipped = "CloudTrail digest file"
            return out
        elif (wrapped := _shapes().decode_document(raw)) is not None:  # EventBridge, CloudWatch Logs...
            wrapped.warnings[:0] = out.warnings
            return wrapped
        elif any(key in doc for key in ("eventTime", "eventID", "eventName")):
            records = [doc]  # a single record (JSON Lines with one line)
        else:
            out.skipped = "not a CloudTrail log: JSON object without 'Records'"
            return out
    else:
        records = doc
    problems: Counter[str] = Counter()
    for index, record in enumerate(records):  # rare: Records not first, or keys after it
        try:
            _add_lenient(out, index, record, dumps_json(record), parser.problems, problems)
        except Exception as exc:
            out.quarantine(index, f"cannot decode record: {type(exc).__name__}: {exc}", repr(record))
    out.warnings.extend(_problem_warnings(problems))
    return out


def _decode_json_lines(raw: bytes, out: Decoded) -> None:
    """One record per line; a line may also hold whole log files (``{"Records": [...]}``), even
    several run together (``}{``: files concatenated without a newline)."""
    problems: Counter[str] = Counter()
    index = 0
    for number, line in enumerate(raw.split(b"\n"), start=1):
        line = line.strip(WHITESPACE)
        if not line:
            continue
        documents = _documents(line) if line.startswith(b'{"Records"') or b"}{" in line else None
        for document in documents or [line]:
            before = len(out.quarantined)
            if document.startswith(b'{"Records"'):
                index += _merge(out, index, document)
            elif (used := _merge_wrapped(out, index, document)) is not None:
                index += used
            else:
                _decode_record(out, index, document, problems)
                index += 1
            for item in out.quarantined[before:]:
                item.reason = f"line {number}: {item.reason}"
    out.warnings.extend(_problem_warnings(problems))


def _shapes() -> Any:
    """The other shapes CloudTrail travels in (imported on first use: it imports this module)."""
    from analyzer.ingest import shapes

    return shapes


def _merge_wrapped(out: Decoded, index: int, document: bytes) -> int | None:
    """A line that is a wrapper (an EventBridge event...): its records; None if it is not one."""
    shapes = _shapes()
    if not shapes.looks_wrapped(document):
        return None
    try:
        return shapes.merge(out, index, document)
    except ObjectError as exc:
        out.quarantine(index, str(exc), document)
        return 1


def _documents(line: bytes) -> list[bytes] | None:
    """The JSON documents run together in ``line``, or None if it is not a sequence of them."""
    text = line.decode("utf-8", "surrogateescape")
    parser = LenientParser()
    documents: list[bytes] = []
    position = 0
    try:
        while position < len(text):
            _, end = parser.parse(text, position)
            documents.append(text[position:end].encode("utf-8", "surrogateescape"))
            position = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    except (json.JSONDecodeError, RecursionError):
        return None
    return documents


def _merge(out: Decoded, offset: int, document: bytes) -> int:
    """Add a whole log file found inside another object; returns how many records it held."""
    try:
        parts = list(_decode_text(document, 1 << 62))
    except ObjectError as exc:
        out.quarantine(offset, str(exc), document)
        return 1
    if parts[0].skipped:
        out.quarantine(offset, f"not a record: {parts[0].skipped}", document)
        return 1
    size = 0
    for part in parts:
        part.shift(offset)
        out.extend(part)
        size = max(size, part.size() - offset)
    return max(size, 1)
