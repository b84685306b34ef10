"""Checks on the SQL itself that need DuckDB: the final columns, and the selective first step.

Metadata is validated at load time (:mod:`analyzer.detect.catalogue`); these checks bind each query
against an empty ``events`` view, so they catch a missing alert column or a typo in a column name
before any data is read. The "first step" rule keeps the catalogue fast: the first read of
``events`` must filter ``eventSource``/``eventName`` (or ``userIdentity.type``) with ``=`` or ``IN``,
which is what lets DuckDB skip Parquet row groups of a dataset clustered by those columns.

These are lints, for speed and correctness. Nothing here is a security boundary: a detection that
reads a file or writes one is stopped by the sandbox every connection runs in
(:mod:`analyzer.store.sandbox`), whatever these checks or the catalogue's file-reader guard miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb
import pyarrow as pa

from analyzer.detect.catalogue import READS_EVENTS, Catalogue, CatalogueError, Detection, code_only
from analyzer.detect.shape import QUERY_COLUMNS, wrap_query
from analyzer.schema import PARTITION_COLUMN, SCHEMA
from analyzer.store import connect

FIRST_READ = re.compile(r"\bfrom\s+events\b(?P<rest>.*?)(?:\)\s*,|\)\s*select\b|$)", re.IGNORECASE | re.DOTALL)
#: ``exists (select 1 from events ...)``: a probe for one row (the data reaching past a deadline), not a read of
#: the events a detection reports on; the first-step rule applies to reads (DuckDB skips a probe whose outer
#: side is empty, which is what makes the probe cheap).
PROBE = re.compile(r"\bexists\s*\(\s*select\s+1\s+from\s+events\b", re.IGNORECASE)
SELECTIVE = re.compile(
    r"\bwhere\b.*?\b(eventSource|eventName|userIdentity\.type)\s*(=|in\s*\()", re.IGNORECASE | re.DOTALL
)


def empty_events() -> duckdb.DuckDBPyConnection:
    """A connection whose ``events`` view has the dataset's columns and no rows."""
    table = SCHEMA.empty_table().append_column(PARTITION_COLUMN, pa.array([], pa.date32()))
    return connect(table=table)


def query_problems(detection: Detection, con: duckdb.DuckDBPyConnection) -> list[str]:
    """What is wrong with one detection's SQL (empty when nothing is)."""
    where = detection.sql_path.name if detection.origin == "bundled" else str(detection.sql_path)
    problems: list[str] = []
    code = PROBE.sub("exists (select 1 from _probe", code_only(detection.sql))
    match = FIRST_READ.search(code)
    # a query over the staging views only inherits their selective first step (analyzer/store/views.py)
    staged_only = match is None and READS_EVENTS.search(code) is not None
    if not staged_only and (match is None or not SELECTIVE.search(match.group("rest"))):
        problems.append(
            f"{where}: the first read of events must filter eventSource/eventName (or userIdentity.type) "
            "with = or IN in its where clause, so Parquet row groups can be skipped"
        )
    params = {**detection.bound, **{name: detection.params[name].default for name in detection.param_names_in_sql()}}
    try:
        columns = con.sql(detection.sql, params=params).columns
    except duckdb.Error as exc:
        return [*problems, f"{where}: does not bind against the events view: {exc}"]
    missing = [c for c in QUERY_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in QUERY_COLUMNS]
    if missing or extra:
        problems.append(
            f"{where}: the final select must return exactly {', '.join(QUERY_COLUMNS)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unexpected {', '.join(extra)}" if extra else "")
        )
    else:
        try:
            con.sql(wrap_query(detection.sql, detection.severity), params=params).fetchall()
        except duckdb.Error as exc:
            problems.append(f"{where}: its columns do not cast to the alert types: {exc}")
    return problems


def lint_catalogue(catalogue: Catalogue, detections: Iterable[Detection] | None = None) -> list[str]:
    """Every SQL problem of every detection (or of ``detections`` only), for one report."""
    con = empty_events()
    try:
        chosen = catalogue.values() if detections is None else detections
        return [p for detection in chosen for p in query_problems(detection, con)]
    finally:
        con.close()


def check_user_detections(catalogue: Catalogue) -> None:
    """Lint the detections users brought, as the bundled ones are in CI; raise one :class:`CatalogueError`."""
    problems = lint_catalogue(catalogue, [d for d in catalogue.values() if d.origin == "user"])
    if problems:
        raise CatalogueError(problems)
