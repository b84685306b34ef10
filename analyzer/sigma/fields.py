"""Where a Sigma rule's CloudTrail field lives in the dataset, and how to read it in DuckDB.

Sigma rules name CloudTrail's own JSON paths (``userIdentity.sessionContext.sessionIssuer.type``,
``requestParameters.userName``, ``additionalEventData.MFAUsed``). The dataset keeps some of them
as typed columns and structs (:mod:`analyzer.schema`) and the open-ended ones as JSON text
(``requestParameters``, ``responseElements``...). A field resolves to one of:

* a column or struct path (``e."userIdentity"."type"``), read as text;
* a path into a JSON column: every value at that path, arrays at any level included
  (``requestParameters.containerDefinitions.command`` reaches each command of each container);
* a path into ``extra`` (fields the schema does not know, as ingest keeps them).

Only CloudTrail-shaped names are accepted (letters, digits, ``_ - : @``), so a path is safe to
write as a SQL literal: a rule's field name never reaches the SQL otherwise.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pyarrow as pa

from analyzer.errors import AnalyzerError
from analyzer.schema import SCHEMA, is_json

#: The fields a plain ``=`` / ``IN`` keeps exact, so DuckDB can skip Parquet row groups on them.
PRUNED_FIELDS = frozenset({"eventSource", "eventName"})
SEGMENT = re.compile(r"^[A-Za-z0-9_\-:@]+$")
MAX_JSON_DEPTH = 5  # 2**depth path variants are read (arrays at any level); deeper paths are refused
ALIAS = "e"


class FieldError(AnalyzerError):
    """A field name the pipeline cannot place (the rule is skipped with this reason)."""


@dataclass(frozen=True)
class Field:
    """A resolved field: ``scalar`` is a SQL text expression; ``values`` (JSON paths) a list of them."""

    name: str
    scalar: str  # one value: the column as text, or the JSON path without array expansion
    values: str | None = None  # every value at the path (JSON columns), as a VARCHAR[] expression
    pruned: bool = False  # eventSource / eventName: compared exactly

    @property
    def is_list(self) -> bool:
        return self.values is not None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _segments(name: str) -> list[str]:
    parts = name.split(".")
    bad = [p for p in parts if not SEGMENT.match(p)]
    if bad:
        raise FieldError(f"field {name!r}: only CloudTrail-style names (letters, digits, _ - : @) are supported")
    return parts


def _json_path(parts: list[str], arrays: tuple[bool, ...] = ()) -> str:
    return "$" + "".join(f'."{p}"' + ("[*]" if arrays and arrays[i] else "") for i, p in enumerate(parts))


def _json_at(name: str, column: str, rest: list[str]) -> Field:
    """A path into the JSON text ``column`` (a SQL expression); no path: the whole text."""
    if not rest:  # ``requestParameters|contains: x`` searches the whole JSON text
        return Field(name, f"cast({column} as varchar)")
    if len(rest) > MAX_JSON_DEPTH:
        raise FieldError(f"field {name!r}: JSON paths deeper than {MAX_JSON_DEPTH} levels are not supported")
    plain = f"json_extract_string({column}, '{_json_path(rest)}')"
    # the same path with [*] after any segment that is an array: each variant reads what the others cannot
    lists = [
        f"json_extract_string({column}, '{_json_path(rest, arrays)}')"
        for arrays in itertools.product((False, True), repeat=len(rest))
        if any(arrays)
    ]
    return Field(name, plain, "flatten([[" + plain + "], " + ", ".join(lists) + "])")


def _column(path: list[str]) -> str:
    return ALIAS + "." + ".".join(_ident(p) for p in path)


def resolve(name: str) -> Field:
    """Where ``name`` (a CloudTrail field path) is read from; :class:`FieldError` when it cannot be."""
    parts = _segments(name)
    if name in PRUNED_FIELDS:
        return Field(name, _column(parts), pruned=True)
    index = SCHEMA.get_field_index(parts[0])
    if index < 0:  # not a CloudTrail field the schema knows: ingest keeps such fields in extra
        return _json_at(name, _column(["extra"]), parts)
    field = SCHEMA.field(index)
    depth = 1
    while not is_json(field) and depth < len(parts):
        if not pa.types.is_struct(field.type):
            raise FieldError(
                f"field {name!r}: {'.'.join(parts[:depth])} is a {field.type} value, it has no field {parts[depth]!r}"
            )
        index = field.type.get_field_index(parts[depth])
        if index < 0:  # a sub-field the schema does not know: ingest keeps the original struct in extra
            return _json_at(name, _column(["extra"]), parts)
        field = field.type.field(index)
        depth += 1
    if is_json(field):
        return _json_at(name, _column(parts[:depth]), parts[depth:])
    if pa.types.is_string(field.type):
        return Field(name, _column(parts))
    return Field(name, f"cast({_column(parts)} as varchar)")  # booleans, times, whole structs: their text
