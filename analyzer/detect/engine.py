"""Run the catalogue over the ``events`` view for a time window; alerts come back as Polars.

The window is applied by shadowing ``events`` with a temporary view over the connection's own
``events`` (filtered on the ``event_date`` partition for pruning, and on ``eventTime`` for the exact
bounds), so every detection keeps reading one view and never sees the window's existence. The
bounds are datetimes we formatted ourselves; nothing a user typed is pasted into SQL, and detection
parameters are bound as DuckDB named parameters.

A detection with a ``lookback`` parameter (its sliding window, in minutes) reads that much before
``since`` so a burst that straddles the start is still seen whole; its alerts are kept when they
end inside the window.

A detection with a ``[trigger]`` (say ``eventName = ["CreateAccessKey"]``) raises alerts only from
events that match it, so where the events it would read (the window and its lookback) hold none, it
is not queried: one scan of a few columns answers that for every such detection at once. Most
windows hold none of the rare calls most detections look for, and a query costs its planning even
on no rows (~15 ms each): that is what keeps ``analyzer watch``'s small batches cheap.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from analyzer.detect.allowlist import Allowlist
from analyzer.detect.catalogue import Catalogue, Detection, load_catalogue
from analyzer.detect.params import Overrides, resolve_params
from analyzer.detect.shape import ALERT_COLUMNS, ALERT_SCHEMA, SEVERITIES, empty_alerts, wrap_query
from analyzer.errors import AnalyzerError
from analyzer.store.sandbox import SandboxError, check_statements, time_limit
from analyzer.timespec import utc
from analyzer.window import TimeLike, Window, parse_window


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
    durations: dict[str, float] = field(default_factory=dict)  # seconds, per detection id queried
    skipped: tuple[str, ...] = ()  # not queried: no event matched their trigger (their counts are 0)

    @property
    def detections(self) -> list[str]:
        return list(self.counts)


def window_predicate(window: Window, lookback: timedelta = timedelta(0)) -> str:
    """SQL conditions for ``window`` (our own formatted datetimes; safe to inline): ``event_date`` for
    partition pruning, ``eventTime`` for the exact bounds; ``lookback`` reaches back before ``since``."""
    terms: list[str] = []
    if window.since is not None:
        start = window.since - lookback
        terms.append(f"event_date >= {_date_literal(start.date())}")
        terms.append(f"eventTime >= {_timestamp_literal(start)}")
    if window.until is not None:
        last_day = (window.until - timedelta(microseconds=1)).date()
        terms.append(f"event_date <= {_date_literal(last_day)}")
        terms.append(f"eventTime < {_timestamp_literal(window.until)}")
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
    since: TimeLike = None,
    until: TimeLike = None,
    only: Iterable[str] | None = None,
    params: Overrides | None = None,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    catalogue: Catalogue | None = None,
    timeout: float | None = None,
    skip_untriggered: bool = True,
) -> DetectionRun:
    """Run the selected detections (all by default) over ``events`` in ``[since, until)``.

    ``since``/``until`` are datetimes (naive ones are UTC) or the CLI's time specs (``"7d"``,
    ``"2026-11-20"``, ``"T-2h"``: :func:`analyzer.window.parse_window`); None is the start or end of
    the data. Returns a :class:`DetectionRun`: ``run.alerts`` is the Polars frame of alerts.

    ``params`` maps detection id → parameter name → value (text or typed; see
    :mod:`analyzer.detect.params`); ``allowlist`` is an :class:`Allowlist` or the ``[allowlist]``
    table. Raises :class:`AnalyzerError` for unknown ids/parameters, bad values, or a query that fails;
    ``timeout`` (seconds, the whole catalogue) stops the run with :class:`~analyzer.store.sandbox.QueryTimeout`.
    With ``skip_untriggered`` (the default), a detection whose trigger no event in its range matches is
    not queried (``run.skipped``): it could not have raised an alert.
    """
    deadline = time.monotonic() + timeout if timeout else None
    catalogue = catalogue if catalogue is not None else load_catalogue()
    selected = catalogue.select(only)
    effective = resolve_params(catalogue, selected, params)
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.from_mapping(allowlist)
    window = parse_window(since, until)

    _enable_metadata_cache(con)
    frames: list[pl.DataFrame] = []
    durations: dict[str, float] = {}
    base = _base_events(con) if window.bounded else ""
    shadow: timedelta | None = None  # the lookback the current temporary view was made for

    def lookback_of(detection: Detection) -> timedelta:
        if not detection.lookback or window.since is None:
            return timedelta(0)
        return timedelta(minutes=int(effective[detection.id][detection.lookback]))

    skipped: set[str] = set()
    if skip_untriggered and window.since is not None:
        with time_limit(con, None if deadline is None else max(deadline - time.monotonic(), 0.001)):
            skipped = _untriggered(con, base, window, selected, lookback_of)

    try:
        # detections sharing a lookback share one shadow view (creating a view binds the dataset)
        for detection in sorted(selected, key=lookback_of):
            if detection.id in skipped:
                continue
            started = time.perf_counter()
            lookback = lookback_of(detection)
            if window.bounded and lookback != shadow:
                con.execute(
                    f"create or replace temporary view events as select * from {base} "  # noqa: S608 - see window_predicate
                    f"where {window_predicate(window, lookback)}"
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
        skipped=tuple(d.id for d in selected if d.id in skipped),
    )


def _untriggered(con: duckdb.DuckDBPyConnection, base: str, window: Window, detections: list[Detection],
                 lookback_of: Callable[[Detection], timedelta]) -> set[str]:
    """The ids of the detections with a trigger that no event they would read matches: one scan for
    all of them, every value bound as a parameter. Should the scan fail, nothing is skipped."""
    triggered = [d for d in detections if d.trigger]
    if not triggered:
        return set()
    params: dict[str, Any] = {}
    seen: list[str] = []
    for i, detection in enumerate(triggered):
        params[f"since_{i}"] = window.since - lookback_of(detection) if window.since else None
        conditions = [f"eventTime >= $since_{i}"]
        for j, (column, values) in enumerate(sorted(detection.trigger.items())):
            params[f"values_{i}_{j}"] = list(values)
            conditions.append(f"list_contains($values_{i}_{j}, {_column(column)})")
        seen.append(f"coalesce(bool_or({' and '.join(conditions)}), false)")
    widest = max(map(lookback_of, triggered))
    sql = f"select {', '.join(seen)} from {base} where {window_predicate(window, widest)}"  # noqa: S608 - ours
    try:
        row = con.execute(sql, params).fetchone()
    except duckdb.InterruptException:
        raise  # the timeout: the run is over
    except duckdb.Error:
        return set()  # cannot tell: query them all
    return {d.id for d, matched in zip(triggered, row or (), strict=True) if not matched}


def _column(path: str) -> str:
    """A dotted column path (checked against the schema by the catalogue), quoted part by part."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in path.split("."))


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
    """Most urgent first, then oldest first: the order a person works through them (the one order,
    :func:`analyzer.alerts.shape.by_urgency`, which renderers use too)."""
    from analyzer.alerts.shape import by_urgency

    return by_urgency(alerts.select(ALERT_COLUMNS))
