"""The one alert shape every detection returns, and how the engine enforces it.

A detection's SQL ends in a final ``select`` that names :data:`QUERY_COLUMNS` (any order). The
engine wraps that query (:func:`wrap_query`), casting each column to its alert type, filling a NULL
``severity`` with the detection's default, and adds ``detection_id`` and ``title`` from the
metadata. So the shape lives here and nowhere else; a query that misses a column fails to bind, and
the metadata test reports it.
"""

from __future__ import annotations

import polars as pl

from analyzer.detect.severity import SEVERITIES

#: Detection maturity, as Sigma uses it.
STATUS_MEANINGS: dict[str, str] = {
    "experimental": "new; logic may change and false positives are not yet known",
    "test": "logic settled; being measured against real data",
    "stable": "tested on real data; false positives known and documented",
    "deprecated": "kept for reference; superseded or no longer useful",
}
STATUSES: tuple[str, ...] = tuple(STATUS_MEANINGS)

#: The alert columns, in order, with their types (the alerts station relies on exactly these).
ALERT_SCHEMA: dict[str, pl.DataType] = {
    "detection_id": pl.String(),
    "severity": pl.String(),
    "title": pl.String(),
    "account_id": pl.String(),
    "region": pl.String(),
    "principal": pl.String(),
    "user_name": pl.String(),
    "source_ip": pl.String(),
    "user_agent": pl.String(),
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
    "count": pl.Int64(),
    "event_ids": pl.List(pl.String()),
    "details": pl.String(),
}
ALERT_COLUMNS: tuple[str, ...] = tuple(ALERT_SCHEMA)

#: What a detection's final select returns, with the DuckDB type the engine casts it to.
QUERY_COLUMNS: dict[str, str] = {
    "severity": "varchar",  # NULL: the detection's default severity
    "account_id": "varchar",
    "region": "varchar",
    "principal": "varchar",  # ARN, or a name; NULL when AWS hides the user name
    "user_name": "varchar",
    "source_ip": "varchar",
    "user_agent": "varchar",
    "first_seen": "timestamptz",
    "last_seen": "timestamptz",
    "count": "bigint",
    "event_ids": "varchar[]",
    "details": "varchar",  # a JSON object
}


def wrap_query(sql: str, default_severity: str) -> str:
    """The detection's SQL inside the select that gives it the alert types.

    ``default_severity`` is one of :data:`SEVERITIES` (validated at load), so inlining it is safe.
    """
    if default_severity not in SEVERITIES:
        raise ValueError(f"unknown severity {default_severity!r}")
    body = sql.strip().rstrip(";").rstrip()
    casts = []
    for name, sql_type in QUERY_COLUMNS.items():
        if name == "severity":
            casts.append(f"coalesce(lower(cast(detection.severity as varchar)), '{default_severity}') as severity")
        else:
            casts.append(f'cast(detection."{name}" as {sql_type}) as "{name}"')
    columns = ",\n    ".join(casts)
    return f"select\n    {columns}\nfrom (\n{body}\n) as detection"


def empty_alerts() -> pl.DataFrame:
    """A frame in the alert shape with no rows (what a quiet run returns)."""
    return pl.DataFrame(schema=ALERT_SCHEMA)


def severity_rank(severity: str | None) -> int:
    """Position of ``severity`` in :data:`SEVERITIES`; -1 for anything else."""
    try:
        return SEVERITIES.index((severity or "").lower())
    except ValueError:
        return -1
