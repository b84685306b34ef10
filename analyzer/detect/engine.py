"""Run the catalogue over the ``events`` view for a time window; alerts come back as Polars.

The window is applied by shadowing ``events`` with a temporary view over the connection's own
``events`` (filtered on the ``event_date`` partition for pruning, and on ``eventTime`` for the exact
bounds), so every detection keeps reading one view and never sees the window's existence. The
bounds are datetimes we formatted ourselves; nothing a user typed is pasted into SQL, and detection
parameters are bound as DuckDB named parameters.

A detection with a ``lookback`` parameter (its sliding window, in minutes) reads that much before
``since`` so a burst that straddles the start is still seen whole; its alerts are kept when they
end inside the window.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from analyzer.detect.allowlist import Allowlist
from analyzer.detect.catalogue import Catalogue, Detection, load_catalogue
from analyzer.detect.params import Overrides, resolve_params
from analyzer.detect.shape import ALERT_COLUMNS, ALERT_SCHEMA, SEVERITIES, empty_alerts, severity_rank, wrap_query
from analyzer.errors import AnalyzerError
from analyzer.store.sandbox import SandboxError, check_statements, time_limit
from analyzer.timespec import utc


@dataclass
class DetectionRun:
    """What one run found: alerts in the alert shape, and how it got there."""

    alerts: pl.DataFrame
    counts: dict[str, int]  # alerts kept, per detection id (every detection run is present)
    suppressed: int  # alerts removed by the allowlist, in total
    suppressed_by_detection: dict[str, int]
    params: dict[str, dict[str, Any]]  # the effective parameters, per detection id
    since: datetime | None = None
    until: datetime | None = None
    durations: dict[str, float] = field(default_factory=dict)  # seconds, per detection id

    @property
    def detections(self) -> list[str]:
        return list(self.counts)


@dataclass(frozen=True)
class Window:
    """The half-open UTC window ``[since, until)``; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since >= self.until:
            raise AnalyzerError(f"--since ({self.since.isoformat()}) must be before --until ({self.until.isoformat()})")

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def predicate(self, lookback: timedelta = timedelta(0)) -> str:
        """SQL conditions for this window (our own formatted datetimes; safe to inline)."""
        terms: list[str] = []
        if self.since is not None:
            start = self.since - lookback
            terms.append(f"event_date >= {_date_literal(start.date())}")
            terms.append(f"eventTime >= {_timestamp_literal(start)}")
        if self.until is not None:
            last_day = (self.until - timedelta(microseconds=1)).date()
            terms.append(f"event_date <= {_date_literal(last_day)}")
            terms.append(f"eventTime < {_timestamp_literal(self.until)}")
        return " and ".join(terms) or "true"


def _date_literal(value: date) -> str:
    return f"date '{value.isoformat()}'"


def _timestamp_literal(value: datetime) -> str:
    return f"timestamptz '{utc(value).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def _base_events(con: duckdb.DuckDBPyConnection) -> str:
    """The qualified name of the connection's own ``events`` (not our temporary shadow)."""
    rows = con.execute(
        "select database_name, schema_name from duckdb_views() where view_name = 'events' and not temporary "
        "union all "
        "select database_name, schema_name from duckdb_tables() where table_name = 'events' and not temporary"
    ).fetchall()
    if not rows:
        raise AnalyzerError("the connection has no events view (open it with analyzer.connect())")
    database, schema = rows[0]
    return ".".join('"' + str(part).replace('"', '""') + '"' for part in (database, schema, "events"))


def _enable_metadata_cache(con: duckdb.DuckDBPyConnection) -> None:
    """Keep Parquet footers in memory: every detection re-opens the same files."""
    with contextlib.suppress(duckdb.Error):  # a DuckDB without the setting: slower, still correct
        con.execute("set parquet_metadata_cache = true")


def run_detections(
    con: duckdb.DuckDBPyConnection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    only: Iterable[str] | None = None,
    params: Overrides | None = None,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    catalogue: Catalogue | None = None,
    timeout: float | None = None,
) -> DetectionRun:
    """Run the selected detections (all by default) over ``events`` in ``[since, until)``.

    ``params`` maps detection id → parameter name → value (text or typed; see
    :mod:`analyzer.detect.params`); ``allowlist`` is an :class:`Allowlist` or the ``[allowlist]``
    table. Raises :class:`AnalyzerError` for unknown ids/parameters, bad values, or a query that fails;
    ``timeout`` (seconds, the whole catalogue) stops the run with :class:`~analyzer.store.sandbox.QueryTimeout`.
    """
    deadline = time.monotonic() + timeout if timeout else None
    catalogue = catalogue if catalogue is not None else load_catalogue()
    selected = catalogue.select(only)
    effective = resolve_params(catalogue, selected, params)
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.from_mapping(allowlist)
    window = Window(utc(since) if since else None, utc(until) if until else None)

    _enable_metadata_cache(con)
    frames: list[pl.DataFrame] = []
    durations: dict[str, float] = {}
    base = _base_events(con) if window.bounded else ""
    shadow: timedelta | None = None  # the lookback the current temporary view was made for

    def lookback_of(detection: Detection) -> timedelta:
        if not detection.lookback or window.since is None:
            return timedelta(0)
        return timedelta(minutes=int(effective[detection.id][detection.lookback]))

    try:
        # detections sharing a lookback share one shadow view (creating a view binds the dataset)
        for detection in sorted(selected, key=lookback_of):
            started = time.perf_counter()
            lookback = lookback_of(detection)
            if window.bounded and lookback != shadow:
                con.execute(
                    f"create or replace temporary view events as select * from {base} "  # noqa: S608 - see Window.predicate
                    f"where {window.predicate(lookback)}"
                )
                shadow = lookback
            with time_limit(con, None if deadline is None else max(deadline - time.monotonic(), 0.001)):
                frame = _run_one(con, detection, effective[detection.id])
            if lookback and window.since is not None:
                frame = frame.filter(pl.col("last_seen") >= window.since)
            frames.append(frame)
            durations[detection.id] = time.perf_counter() - started
    finally:
        if window.bounded:
            con.execute("drop view if exists temp.events")

    alerts = pl.concat(frames, how="vertical") if frames else empty_alerts()
    suppressed_mask = rules.matches(alerts)
    suppressed_rows = alerts.filter(suppressed_mask)
    alerts = alerts.filter(~suppressed_mask)
    alerts = _ordered(alerts)
    kept = dict(alerts.group_by("detection_id").len().iter_rows()) if alerts.height else {}
    dropped = dict(suppressed_rows.group_by("detection_id").len().iter_rows()) if suppressed_rows.height else {}
    return DetectionRun(
        alerts=alerts,
        counts={d.id: int(kept.get(d.id, 0)) for d in selected},
        suppressed=suppressed_rows.height,
        suppressed_by_detection={d.id: int(dropped.get(d.id, 0)) for d in selected},
        params=effective,
        since=window.since,
        until=window.until,
        durations=durations,
    )


def _run_one(con: duckdb.DuckDBPyConnection, detection: Detection, values: Mapping[str, Any]) -> pl.DataFrame:
    sql = wrap_query(detection.sql, detection.severity)
    bound = {**detection.bound, **{name: values[name] for name in detection.param_names_in_sql()}}
    try:
        check_statements(con, sql)  # the sandbox allows the dataset's files: no statement may write them
        table = con.sql(sql, params=bound).to_arrow_table()
    except (duckdb.Error, SandboxError) as exc:
        where = detection.sql_path.name if detection.origin == "bundled" else str(detection.sql_path)
        raise AnalyzerError(f"detection {detection.id} ({where}) failed: {exc}") from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.lit(detection.id, pl.String).alias("detection_id"),
        pl.lit(detection.title, pl.String).alias("title"),
        pl.col("first_seen").dt.convert_time_zone("UTC"),
        pl.col("last_seen").dt.convert_time_zone("UTC"),
    )
    frame = frame.select([pl.col(name).cast(dtype) for name, dtype in ALERT_SCHEMA.items()])
    bad = sorted(set(frame["severity"].to_list()) - set(SEVERITIES))
    if bad:
        raise AnalyzerError(f"detection {detection.id} returned unknown severity {bad} (use {', '.join(SEVERITIES)})")
    return frame


def _ordered(alerts: pl.DataFrame) -> pl.DataFrame:
    """Most urgent first, then oldest first: the order a person works through them."""
    if alerts.is_empty():
        return alerts.select(ALERT_COLUMNS)
    rank = pl.col("severity").replace_strict({s: -severity_rank(s) for s in SEVERITIES}, return_dtype=pl.Int32)
    ties = ("first_seen", "detection_id", "principal", "source_ip", "last_seen", "details")
    keys = [rank, *(pl.col(c) for c in ties)]
    return alerts.sort(keys, nulls_last=True, maintain_order=True).select(ALERT_COLUMNS)
