"""Run a detection's embedded cases: records → the ingest path → ``events`` → the detection.

The records go through the same decoding and Arrow building as real log files, and the
detection runs through :func:`run_detections`, so a case tests exactly what production runs.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from analyzer.detect.catalogue import Case, Catalogue, Detection
from analyzer.detect.engine import DetectionRun, run_detections
from analyzer.ingest import build_table, decode_object
from analyzer.store import connect


def _table(records: Sequence[Mapping[str, Any]], source: str) -> pa.Table:
    decoded = decode_object(json.dumps({"Records": list(records)}).encode())
    table, quarantined = build_table([(source, decoded)])
    if quarantined or decoded.quarantined:
        reasons = [q.reason for _, q in quarantined] + [q.reason for q in decoded.quarantined]
        raise ValueError(f"records could not be placed in the dataset: {reasons}")
    return table


def events_connection(
    records: Sequence[Mapping[str, Any]],
    source: str = "case.json",
    superseded: Sequence[Mapping[str, Any]] = (),
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose ``events`` view holds ``records`` (decoded like a log file), and
    whose ``events_superseded`` holds ``superseded``: an older version of the same log object,
    replaced by ``records`` (as :mod:`analyzer.store.versions` keeps it).

    One DuckDB thread: for a handful of records, more threads only add scheduling overhead.
    """
    old = None
    if superseded:
        old = _table(superseded, source)
        old = (old.append_column("superseded_by", pa.array(["case"] * old.num_rows, pa.string()))
               .append_column("superseded_at", pa.array([datetime(2000, 1, 1, tzinfo=UTC)] * old.num_rows,
                                                        pa.timestamp("us", tz="UTC"))))
    return connect(table=_table(records, source), superseded=old, threads=1)


def run_case(catalogue: Catalogue, detection: Detection, case: Case) -> DetectionRun:
    """Run one case of ``detection`` (with the case's parameter overrides)."""
    con = events_connection(case.records, superseded=case.superseded)
    try:
        return run_detections(con, only=[detection.id], params={detection.id: case.params}, catalogue=catalogue)
    finally:
        con.close()


def case_problems(case: Case, alerts: pl.DataFrame) -> list[str]:
    """How the alerts differ from what the case expects (empty when they agree)."""
    problems: list[str] = []
    if alerts.height != case.alerts:
        problems.append(f"expected {case.alerts} alert(s), got {alerts.height}")
    if not case.positive or alerts.is_empty():
        return problems
    for row in alerts.to_dicts():
        for key, wanted in case.expect.items():
            got = row.get(key)
            if key == "details":
                details = json.loads(got or "{}")
                for name, value in wanted.items():
                    if details.get(name) != value:
                        problems.append(f"details.{name}: expected {value!r}, got {details.get(name)!r}")
            elif key == "event_ids":
                if sorted(got or []) != sorted(wanted):
                    problems.append(f"event_ids: expected {sorted(wanted)}, got {sorted(got or [])}")
            elif got != wanted:
                problems.append(f"{key}: expected {wanted!r}, got {got!r}")
    return problems


#: What a diff shows of each alert when the case names no field (a negative case, or alerts without expect).
DIFF_FIELDS = ("severity", "principal", "source_ip", "count")


def case_diff(case: Case, alerts: pl.DataFrame) -> list[str]:
    """Expected vs actual as a unified diff (``-`` expected, ``+`` actual), for a person fixing the case.

    Each side lists the number of alerts, then for each alert the fields the case checks (``details``
    keys one by one). Whether the case passes is :func:`case_problems`' call; this only shows it.
    """
    keys = [k for k in case.expect if k != "details"] or list(DIFF_FIELDS)
    details = list(case.expect.get("details", {}))

    def lines(count: int, value: Any) -> list[str]:
        out = [f"alerts: {count}"]
        for i in range(count):
            out += [f"alert[{i}].{key}: {_shown(key, value(i, key))}" for key in keys]
            out += [f"alert[{i}].details.{name}: {_shown(name, value(i, ('details', name)))}" for name in details]
        return out

    def wanted(_: int, key: Any) -> Any:
        return case.expect["details"][key[1]] if isinstance(key, tuple) else case.expect.get(key)

    rows = alerts.to_dicts()

    def got(i: int, key: Any) -> Any:
        if isinstance(key, tuple):
            return json.loads(rows[i].get("details") or "{}").get(key[1])
        return rows[i].get(key)

    expected = lines(case.alerts, wanted) if case.positive else ["alerts: 0"]
    actual = lines(len(rows), got)
    context = len(expected) + len(actual)  # the whole of both sides: a case is small
    return list(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=context))


def _shown(key: str, value: Any) -> str:
    if key == "event_ids" and isinstance(value, list):
        value = sorted(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
