"""Typed record structs, derived from the canonical schema, and the lenient fallback.

The fast path decodes a whole log file with msgspec into strict structs: unknown fields, explicit
nulls and off-type values are rejected, and the open-ended blobs stay ``msgspec.Raw`` (the
original JSON bytes, never re-serialised). Anything the strict structs reject goes through
:class:`LenientParser` (Python's json, which takes what msgspec refuses) and :func:`coerce_record`,
which normalises each value and keeps the original in ``extra`` so that nothing is lost.

What a row cannot hold exactly (a duplicate key, invalid UTF-8, a lone surrogate, a number that
does not survive a float) makes the row keep the whole original record, base64, under
:data:`ORIGINAL_KEY` in ``extra``; the typed columns then hold valid Unicode (U+FFFD), so that
DuckDB's JSON functions never fail on a row an attacker wrote.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import msgspec
import pyarrow as pa

from analyzer.schema import EVENT_FIELDS, is_json


def _struct_type(name: str, fields: list[pa.Field]) -> type[msgspec.Struct]:
    spec: list[tuple[str, Any, Any]] = []
    for f in fields:
        if is_json(f):
            kind: Any = msgspec.Raw
        elif pa.types.is_struct(f.type):
            kind = _struct_type(f"{name}_{f.name}", list(f.type))
        elif pa.types.is_boolean(f.type):
            kind = bool
        else:  # strings, and eventTime kept as its original text until the column is built
            kind = str
        # default None means "absent"; an explicit JSON null is rejected (kind is not Optional)
        spec.append((f.name, kind, None))
    # gc=False: records hold no reference cycles, and tracking millions of them makes the cyclic
    # garbage collector rescan them over and over (measured: most of the build time)
    return msgspec.defstruct(name, spec, forbid_unknown_fields=True, omit_defaults=True, gc=False)


Record: Any = _struct_type("Record", EVENT_FIELDS)
RECORD_FIELDS: dict[str, pa.Field] = {f.name: f for f in EVENT_FIELDS}

LogFile: Any = msgspec.defstruct("LogFile", [("Records", list[Record])], forbid_unknown_fields=True)
decode_log_file = msgspec.json.Decoder(LogFile).decode
decode_record_array = msgspec.json.Decoder(list[Record]).decode
decode_record = msgspec.json.Decoder(Record).decode
RawLogFile: Any = msgspec.defstruct("RawLogFile", [("Records", list[msgspec.Raw])])
decode_raw_log_file = msgspec.json.Decoder(RawLogFile).decode
decode_raw_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
encode = msgspec.json.Encoder().encode

#: The key in ``extra`` that holds a record's original bytes (base64) when its row cannot hold it
#: exactly; a record that has this key itself is kept the same way, so the key is never ambiguous.
ORIGINAL_KEY = "_analyzer_original_b64"

_NESTED_TYPES: dict[str, Any] = {}


def _nested(cls: Any) -> dict[str, Any]:
    """Map each struct-typed field of ``cls`` to its struct class."""
    if cls not in _NESTED_TYPES:
        hints = msgspec.structs.fields(cls)
        _NESTED_TYPES[cls] = {h.name: h.type for h in hints}
    return _NESTED_TYPES[cls]


def dumps_json(value: Any) -> bytes:
    """JSON text for a value that came from the generic parser (may hold lone surrogates)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: keep it as a \\uXXXX escape, losslessly
        return json.dumps(value, separators=(",", ":")).encode()


def _utf8_clean(text: str) -> str | None:
    """``text`` if it encodes as UTF-8, else a copy with lone surrogates replaced (U+FFFD)."""
    try:
        text.encode()
        return None
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def _coerce_scalar(value: Any, field: pa.Field) -> tuple[Any, bool]:
    """Normalise one scalar; the flag says whether it was kept exactly as given."""
    if pa.types.is_boolean(field.type):
        if isinstance(value, bool):
            return value, True
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", False
        return None, False
    if isinstance(value, str):
        cleaned = _utf8_clean(value)
        return (value, True) if cleaned is None else (cleaned, False)
    if value is None:
        return None, False
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    return dumps_json(value).decode(), False


def _coerce_struct(value: Any, cls: Any, fields: list[pa.Field]) -> tuple[Any, bool]:
    if not isinstance(value, dict):
        return None, False
    known = {f.name: f for f in fields}
    nested = _nested(cls)
    kwargs: dict[str, Any] = {}
    exact = True
    for key, item in value.items():
        field = known.get(key)
        if field is None:
            exact = False
            continue
        coerced, ok = coerce_value(item, field, nested[key])
        exact = exact and ok
        if coerced is not None:
            kwargs[key] = coerced
    return cls(**kwargs), exact


def coerce_value(value: Any, field: pa.Field, cls: Any = None) -> tuple[Any, bool]:
    """Coerce a generic JSON value to what the struct field holds; flag exactness."""
    if is_json(field):
        return msgspec.Raw(dumps_json(value)), True
    if pa.types.is_struct(field.type):
        return _coerce_struct(value, cls, list(field.type))
    return _coerce_scalar(value, field)


def coerce_record(record: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
    """A lenient record: (Record struct, extra) where extra keeps unknown and normalised fields."""
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    nested = _nested(Record)
    for key, value in record.items():
        field = RECORD_FIELDS.get(key)
        if field is None:
            extra[key] = value
            continue
        coerced, exact = coerce_value(value, field, nested[key])
        if not exact:
            extra[key] = value
        if coerced is not None:
            kwargs[key] = coerced
    return Record(**kwargs), (extra or None)


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")


class LenientParser:
    """Python's json with a note of everything a parsed value cannot reproduce.

    ``problems`` (reset by :meth:`parse`) names what was found: a duplicate key (the last value
    wins in the value), a number that does not survive a float (a non-finite one becomes its
    text), NaN/Infinity (their text), lone surrogates (replaced by U+FFFD in the value).
    """

    def __init__(self) -> None:
        self.problems: set[str] = set()
        self._decoder = json.JSONDecoder(
            object_pairs_hook=self._object, parse_float=self._float, parse_int=self._int,
            parse_constant=self._constant,
        )

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) != len(pairs):
            self.problems.add("a duplicate key")
        return value

    def _float(self, text: str) -> Any:
        number = float(text)
        if not math.isfinite(number):
            self.problems.add("a number out of range")
            return text
        if repr(number) != text:
            self.problems.add("a number a float cannot hold exactly")
        return number

    def _int(self, text: str) -> int:
        number = int(text)
        if text == "-0":
            self.problems.add("a number a float cannot hold exactly")
        return number

    def _constant(self, text: str) -> str:
        self.problems.add(f"{text} (not JSON)")
        return text

    def parse(self, text: str, start: int = 0) -> tuple[Any, int]:
        """The JSON value at ``text[start:]`` and where it ends (json.JSONDecodeError if none)."""
        self.problems = set()
        value, end = self._decoder.raw_decode(text, start)
        if _LONE_SURROGATE.search(text, start, end):
            self.problems.add("invalid UTF-8 or a lone surrogate")
            value = _valid_unicode(value)
        return value, end


def _valid_unicode(value: Any) -> Any:
    """``value`` with every lone surrogate (from invalid UTF-8 or a ``\\udXXX`` escape) as U+FFFD."""
    if isinstance(value, str):
        return _utf8_clean(value) or value
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(v) for v in value]
    return value


def keep_original(extra: dict[str, Any] | None, original: bytes) -> dict[str, Any]:
    """``extra`` with the record's original bytes under :data:`ORIGINAL_KEY`."""
    kept = dict(extra or {})
    kept[ORIGINAL_KEY] = base64.b64encode(original).decode("ascii")
    return kept


def original_bytes(extra: dict[str, Any]) -> bytes | None:
    """The original bytes of a record whose row keeps them (see :func:`keep_original`)."""
    value = extra.get(ORIGINAL_KEY)
    return base64.b64decode(value) if isinstance(value, str) else None
