"""Athena: the table over a published prefix, the views the catalogue reads, and the catalogue as files.

:func:`ddl` writes ``CREATE EXTERNAL TABLE`` for the Parquet files ``analyzer publish`` uploads, with
every column typed exactly as the files are (``userIdentity`` and ``tlsDetails`` as structs, ``eventTime``
a timestamp, the JSON blobs strings) and partition projection on ``event_date`` (no ``MSCK REPAIR``, no
crawler: a query's ``event_date`` bounds choose the day folders it lists), then the deduplicating
``events`` view and the staging views, in Trino's SQL (Athena engine v3). :func:`queries` gives every
detection as Athena SQL whose parameters are ``?``, in the order to pass as execution parameters.

Athena reads the prefix's folders, not the snapshot listing: while ``analyzer publish`` replaces a
compacted day, a day's old and new files are both there for a moment. ``events`` deduplicates by the
event's identity (the window of :data:`analyzer.store.engine.DEDUP_BY_WINDOW`), so even then it shows
each event once; ``events_all`` may show such a day twice until the old files are deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from analyzer.errors import UsageError
from analyzer.scale import dialects

if TYPE_CHECKING:
    from analyzer.detect.catalogue import Detection

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: The first day partition projection offers (CloudTrail started in November 2013).
FIRST_DAY = date(2013, 11, 1)


def hive_type(kind: pa.DataType) -> str:
    """An Arrow type of the dataset's Parquet files as an Athena (Hive DDL) type."""
    if pa.types.is_struct(kind):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in kind) + ">"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_int32(kind):
        return "int"
    if pa.types.is_int64(kind):
        return "bigint"
    if pa.types.is_date32(kind):
        return "date"
    raise ValueError(f"no Athena type for {kind}")


def columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """(column, Athena type) for every field of ``schema``, in order."""
    return [(field.name, hive_type(field.type)) for field in schema]


def _name(value: str, option: str) -> str:
    if not _NAME.match(value):
        raise UsageError(f"{value!r}: Athena names are lowercase letters, digits and _", option=option)
    return value


def _location(url: str) -> str:
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise UsageError(f"{url!r}: expected s3://BUCKET/PREFIX", option="--location")
    return url.rstrip("/") + "/"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Names:
    """Where the tables and views live: ``database.table``, and the evidence table beside it."""

    database: str = "cloudtrail"
    table: str = "events_all"

    def __post_init__(self) -> None:
        _name(self.database, "--database")
        _name(self.table, "--table")

    @property
    def superseded(self) -> str:
        return "events_superseded"


def table_ddl(location: str, names: Names = Names()) -> str:
    """``CREATE EXTERNAL TABLE`` over the published data files, partition projection on ``event_date``."""
    from analyzer.schema import PARTITION_COLUMN, SCHEMA

    root = _location(location)
    body = ",\n".join(f"  `{name}` {kind}" for name, kind in columns(SCHEMA))
    template = f"{root}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/"
    properties = {
        "projection.enabled": "true",
        f"projection.{PARTITION_COLUMN}.type": "date",
        f"projection.{PARTITION_COLUMN}.format": "yyyy-MM-dd",
        f"projection.{PARTITION_COLUMN}.range": f"{FIRST_DAY.isoformat()},NOW",
        f"projection.{PARTITION_COLUMN}.interval": "1",
        f"projection.{PARTITION_COLUMN}.interval.unit": "DAYS",
        "storage.location.template": template,
        "parquet.compression": "ZSTD",
    }
    props = ",\n".join(f"  {_quote(k)} = {_quote(v)}" for k, v in properties.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{names.database}`.`{names.table}` (\n{body}\n)\n"
        f"PARTITIONED BY (`{PARTITION_COLUMN}` date)\nSTORED AS PARQUET\nLOCATION {_quote(root)}\n"
        f"TBLPROPERTIES (\n{props}\n);"
    )


def superseded_ddl(location: str, names: Names = Names()) -> str:
    """The rows of rewritten log objects' older versions (published under ``_analyzer/superseded/``)."""
    from analyzer.schema import PARTITION_COLUMN, SCHEMA

    root = _location(location)
    fields = [*columns(SCHEMA), (PARTITION_COLUMN, "date"), ("superseded_by", "string"), ("superseded_at", "timestamp")]
    body = ",\n".join(f"  `{name}` {kind}" for name, kind in fields)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{names.database}`.`{names.superseded}` (\n{body}\n)\n"
        f"STORED AS PARQUET\nLOCATION {_quote(root + '_analyzer/superseded/')};"
    )


def _renamed(sql: str, names: Names) -> str:
    """Transpiled view SQL reading ``names.table`` for ``events_all`` (the AST's table names, not text)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="trino")
    for table in tree.find_all(exp.Table):
        if table.name == "events_all" and names.table != "events_all":
            table.set("this", exp.to_identifier(names.table))
    return tree.sql("athena", pretty=True)


def view_ddl(names: Names = Names()) -> list[str]:
    """``events`` (each event once) and the staging views, as Athena ``CREATE OR REPLACE VIEW``."""
    events = _renamed(dialects.events_query("athena"), names)
    statements = [f"CREATE OR REPLACE VIEW `{names.database}`.`events` AS\n{events};"]
    for name, sql in dialects.view_queries("athena"):
        statements.append(f"CREATE OR REPLACE VIEW `{names.database}`.`{name}` AS\n{sql};")
    return statements


def ddl(location: str, names: Names = Names()) -> str:
    """Everything to run once in Athena (in order): the two tables and the views."""
    parts = [table_ddl(location, names), superseded_ddl(location, names), *view_ddl(names)]
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class AthenaQuery:
    """One detection for Athena: its SQL, and its parameters in the order of its ``?``."""

    detection_id: str
    sql: str
    params: tuple[str, ...]

    def execution_parameters(self, values: Mapping[str, Any]) -> list[str]:
        """The values to pass as ``ExecutionParameters``, in order (each a SQL literal as text)."""
        return [literal_text(values[name]) for name in self.params]


def literal_text(value: Any) -> str:
    """A parameter value as Athena wants it in ``ExecutionParameters``: ``'text'`` quoted, numbers and
    booleans bare."""
    return dialects.literal(value).sql("athena")


def queries(detections: Iterable[Detection]) -> list[AthenaQuery]:
    """Every detection as Athena SQL (errors name a detection that cannot be transpiled, and why)."""
    out = []
    for detection in detections:
        transpiled = dialects.transpile_detection(detection, "athena")
        out.append(AthenaQuery(detection.id, transpiled.sql, transpiled.params))
    return out


def query_file(detection: Detection, query: AthenaQuery) -> str:
    """A detection's ``.sql`` file for Athena: what it is, its parameters in order with their defaults
    (the ``ExecutionParameters`` to pass), and the query."""
    title = " ".join(detection.title.split())  # a user's title: one line, so it stays a comment
    lines = [
        f"-- {detection.id}: {title} (severity {detection.severity})",
        "-- Transpiled from the analyzer's DuckDB SQL; run it in the database of `analyzer athena ddl`.",
    ]
    if query.params:
        defaults = query.execution_parameters(detection.defaults)
        lines.append(
            "-- Execution parameters, in order (defaults): "
            + ", ".join(f"{name}={value}" for name, value in zip(query.params, defaults, strict=True))
        )
    else:
        lines.append("-- No execution parameters.")
    return "\n".join(lines) + "\n" + query.sql.rstrip().rstrip(";") + ";\n"
