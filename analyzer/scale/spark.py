"""The catalogue on Spark: the same ``events`` view, the same staging views, the same alerts.

:func:`open_dataset` gives a SparkSession the relations the catalogue reads, as temporary views:

- ``events_all``: the committed snapshot's files, listed one by one (never a folder scan: a writer's
  uncommitted file is never read), or for a published prefix (``s3a://...``) the files its snapshot
  listing names (``_analyzer/snapshot.json``, written by ``analyzer publish`` after the files);
- ``events``: each event once, deduplicated exactly as DuckDB does it (an anti join with the duplicate
  index committed with the snapshot, or the window over the event's identity when the index is stale
  or absent, as on a published prefix);
- ``events_superseded`` and the staging views (``console_signins``, ``identity_changes``, ...),
  transpiled from their DuckDB definitions (:mod:`analyzer.scale.dialects`).

:func:`run_detections` runs the catalogue over a window and returns a
:class:`~analyzer.detect.engine.DetectionRun` in the one alert shape, so every renderer, allowlist and
notifier works unchanged. Parameter values are literals of the query's tree, never pasted text.

Spark's own settings (master, memory, S3 credentials...) are Spark's: ``spark-defaults.conf``,
``SPARK_CONF_DIR``, ``PYSPARK_SUBMIT_ARGS`` and the ``[spark]`` table of the config file
(:class:`SparkOptions`); nothing here picks a master or a memory size. The one setting the analyzer
makes is the session time zone (UTC), without which Spark would read CloudTrail's UTC times in the
machine's zone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from analyzer.errors import AnalyzerError
from analyzer.scale import dialects

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from analyzer.detect.allowlist import Allowlist
    from analyzer.detect.catalogue import Catalogue, Detection
    from analyzer.detect.engine import DetectionRun
    from analyzer.detect.params import Overrides
    from analyzer.window import TimeLike, Window

log = logging.getLogger("analyzer.scale")

#: Where ``analyzer publish`` lists the files of the snapshot it published (relative to the prefix).
SNAPSHOT_LISTING = "_analyzer/snapshot.json"
_BASE = "_analyzer_events_unwindowed"  # events before any window
_DUPLICATES = "_analyzer_duplicates"
INSTALL_HINT = "Spark is not installed: pip install 'analyzer[spark]' (it needs a Java 17+ runtime)"


@dataclass(frozen=True)
class SparkOptions:
    """How to build a SparkSession when the caller has none: the ``[spark]`` table. Unset keys are
    left to Spark (``spark-defaults.conf``, ``PYSPARK_SUBMIT_ARGS``; its own default master is local[*])."""

    master: str | None = None
    app_name: str = "analyzer"
    conf: Mapping[str, str] = field(default_factory=dict)


def session(options: SparkOptions | None = None) -> SparkSession:
    """The active SparkSession, or a new one built from ``options`` (the config file's ``[spark]``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise AnalyzerError(INSTALL_HINT) from None
    options = options or SparkOptions()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(options.app_name)
    if options.master:
        builder = builder.master(options.master)
    for key, value in options.conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # no Java, a bad master URL: Py4J's errors are long
        raise AnalyzerError(f"Spark could not start: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().split("\n")
    return " ".join(text[0].split()) if text else type(exc).__name__


# -- the schema ---------------------------------------------------------------------------------------------------


def spark_type(kind: pa.DataType) -> str:
    """A Parquet/Arrow type of the dataset as a Spark SQL type."""
    if pa.types.is_struct(kind):
        return "struct<" + ",".join(f"`{f.name}`:{spark_type(f.type)}" for f in kind) + ">"
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
    raise AnalyzerError(f"no Spark type for {kind}")


def events_schema() -> str:
    """``events_all``'s schema as Spark DDL: the canonical schema plus the ``event_date`` partition."""
    from analyzer.schema import PARTITION_COLUMN, SCHEMA

    columns = [f"`{f.name}` {spark_type(f.type)}" for f in SCHEMA]
    return ", ".join([*columns, f"`{PARTITION_COLUMN}` date"])


# -- the dataset --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkDataset:
    """What :func:`open_dataset` registered: where from, how many files, how ``events`` deduplicates."""

    location: str
    files: int
    dedup: str  # "index" (the committed duplicate index) or "window" (by the event's identity)


def _is_url(data: str | Path) -> bool:
    return "://" in str(data)


def _local_snapshot(spark: SparkSession, data: Path) -> tuple[list[str], list[str], pa.Table | None]:
    from analyzer.store import engine, snapshot
    from analyzer.store.layout import Layout

    layout = Layout(data)
    if not layout.internal.exists():
        raise AnalyzerError(f"{data}: no analyzer dataset here (run `analyzer ingest` first)")
    snap = snapshot.read(layout)
    return snap.paths(), snap.paths(snapshot.EVIDENCE), engine._duplicate_index(layout, snap)


def _published_snapshot(spark: SparkSession, url: str) -> tuple[list[str], list[str]]:
    """The files a published prefix's snapshot listing names, as URLs."""
    base = url.rstrip("/")
    listing = f"{base}/{SNAPSHOT_LISTING}"
    try:
        rows = spark.read.text(listing, wholetext=True).collect()
    except Exception as exc:
        raise AnalyzerError(
            f"{listing}: cannot be read ({_short(exc)}); publish the dataset with "
            "`analyzer publish`, or check Spark's S3 settings"
        ) from None
    try:
        document = json.loads(rows[0][0]) if rows else {}
        data = [f"{base}/{entry['path']}" for entry in document["files"]]
        evidence = [f"{base}/{entry['path']}" for entry in document.get("evidence", [])]
    except (ValueError, KeyError, TypeError) as exc:
        raise AnalyzerError(f"{listing}: not a snapshot listing ({exc})") from None
    return data, evidence


def open_dataset(spark: SparkSession, data: str | Path) -> SparkDataset:
    """Register ``events_all``, ``events``, ``events_superseded`` and the staging views on ``spark``
    for the dataset at ``data``: a local dataset directory (its committed snapshot) or a published
    prefix URL that Spark can read (``s3a://bucket/prefix``)."""

    spark.conf.set("spark.sql.session.timeZone", "UTC")  # CloudTrail's times are UTC (see the module doc)
    schema = events_schema()
    duplicates: pa.Table | None = None
    if _is_url(data):
        files, evidence = _published_snapshot(spark, str(data))
        base = str(data).rstrip("/")
    else:
        root = Path(data).absolute()
        files, evidence, duplicates = _local_snapshot(spark, root)
        base = str(root)
    if files:
        frame = spark.read.schema(schema).option("basePath", base).parquet(*files)
    else:
        frame = spark.createDataFrame([], schema)
    frame.createOrReplaceTempView("events_all")
    if duplicates is not None and duplicates.num_rows:
        spark.createDataFrame(duplicates).createOrReplaceTempView(_DUPLICATES)
        dedup, query = "index", dialects.events_query("spark", duplicates=_DUPLICATES)
    elif duplicates is not None:
        dedup, query = "index", "SELECT * FROM events_all"
    else:
        dedup, query = "window", dialects.events_query("spark")
    _view(spark, _BASE, query)
    _install_superseded(spark, evidence)
    shadow(spark, None)
    return SparkDataset(str(data), len(files), dedup)


def open_table(spark: SparkSession, table: pa.Table, superseded: pa.Table | None = None) -> SparkDataset:
    """The same views over rows in memory (the canonical schema plus ``event_date``, as
    :func:`analyzer.ingest.build_table` makes them): a detection's cases on Spark. ``superseded``:
    rows of a replaced object version, for ``events_superseded``."""

    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.createDataFrame(table, events_schema()).createOrReplaceTempView("events_all")
    losers = duplicate_index(table)
    if losers.num_rows:
        spark.createDataFrame(losers).createOrReplaceTempView(_DUPLICATES)
        _view(spark, _BASE, dialects.events_query("spark", duplicates=_DUPLICATES))
    else:
        _view(spark, _BASE, "SELECT * FROM events_all")
    _install_superseded(spark, [], superseded)
    shadow(spark, None)
    return SparkDataset("memory", 0, "index")


def duplicate_index(table: pa.Table) -> pa.Table:
    """The second deliveries among rows in memory (``source_object``, ``record_index``), as an ingest
    indexes them (:mod:`analyzer.store.dedup`): a few case records need no window on Spark."""
    import duckdb

    from analyzer.store.dedup import IDENTITY_SQL

    con = duckdb.connect()
    try:
        con.register("_rows", table)
        sql = (
            "select source_object, record_index::bigint as record_index from _rows where eventID is not null "  # noqa: S608
            f"qualify row_number() over (partition by {IDENTITY_SQL} order by source_object, record_index) > 1"
        )  # IDENTITY_SQL is our constant
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _install_superseded(spark: SparkSession, evidence: list[str], table: pa.Table | None = None) -> None:
    """``events_superseded``: the rows of rewritten objects' older versions (evidence files, or rows in
    memory): ``events_all``'s columns plus ``superseded_by`` and ``superseded_at``."""
    schema = f"{events_schema()}, `superseded_by` string, `superseded_at` timestamp"
    if table is not None:
        frame = spark.createDataFrame(table, schema)
    elif evidence:
        frame = spark.read.schema(schema).parquet(*evidence)
    else:
        frame = spark.createDataFrame([], schema)
    frame.createOrReplaceTempView("events_superseded")


def _view(spark: SparkSession, name: str, query: str) -> None:
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {query}")  # our names; the query is transpiled


def shadow(spark: SparkSession, predicate: str | None) -> None:
    """Make ``events`` the deduplicated events in a window (``predicate``: Spark SQL over ``events``'
    columns), or all of them (None). The staging views read ``events`` by name, and Spark resolves a
    temporary view's names when it is queried, so they follow."""
    query = f"SELECT * FROM {_BASE}" + (f" WHERE {predicate}" if predicate else "")  # noqa: S608 - our SQL
    _view(spark, "events", query)
    install_views(spark)


def install_views(spark: SparkSession) -> None:
    """The staging views (once per session: they bind ``events`` when queried, as DuckDB's do)."""
    marker = "analyzer.views"
    version = str(hash(tuple(dialects.view_queries("spark"))))
    if spark.conf.get(marker, None) == version:
        return
    for name, sql in dialects.view_queries("spark"):
        _view(spark, name, sql)
    spark.conf.set(marker, version)


def window_predicate(window: Window, lookback: timedelta = timedelta(0)) -> str | None:
    """The window's conditions in Spark SQL (the DuckDB ones, transpiled), or None for no window."""
    from sqlglot import exp

    from analyzer.detect.engine import window_predicate as duckdb_predicate

    if not window.bounded:
        return None
    sql = f"select * from events where {duckdb_predicate(window, lookback)}"  # noqa: S608 - our formatted bounds
    tree = dialects.rewrite(dialects.parse(sql, "window"), "spark", name="window", values={})
    where = tree.args.get("where")
    assert where is not None
    for column in where.find_all(exp.Column):
        column.set("table", None)  # the shadow view reads the base view by another name
    return str(where.this.sql("spark"))


# -- running the catalogue -------------------------------------------------------------------------------------


@contextmanager
def _time_limit(spark: SparkSession, seconds: float | None, group: str) -> Iterator[None]:
    """Cancel the queries of ``group`` once ``seconds`` have passed (they fail; see :func:`_run_one`)."""
    from analyzer.store.sandbox import QueryTimeout

    context = spark.sparkContext
    context.setJobGroup(group, "analyzer detection", interruptOnCancel=True)
    fired = threading.Event()
    timer = None
    if seconds:

        def cancel() -> None:
            fired.set()
            context.cancelJobGroup(group)

        timer = threading.Timer(seconds, cancel)
        timer.daemon = True
        timer.start()
    try:
        yield
    except Exception:
        if fired.is_set():
            raise QueryTimeout(f"the detections ran longer than {seconds:g} s and were stopped") from None
        raise
    finally:
        if timer is not None:
            timer.cancel()


def to_arrow(frame: DataFrame) -> pa.Table:
    """A Spark result as Arrow (``toArrow``: Spark 4, no pandas)."""
    return frame.toArrow()


def _run_one(spark: SparkSession, detection: Detection, values: Mapping[str, Any]) -> pl.DataFrame:
    from analyzer.detect.shape import ALERT_SCHEMA, SEVERITIES

    where = detection.sql_path.name if detection.origin == "bundled" else str(detection.sql_path)
    sql = dialects.transpile_detection(detection, "spark", values=values, pretty=False).sql
    try:
        table = to_arrow(spark.sql(sql))
    except AnalyzerError:
        raise
    except Exception as exc:
        raise AnalyzerError(f"detection {detection.id} ({where}) failed on Spark: {_short(exc)}") from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.lit(detection.id, pl.String).alias("detection_id"),
        pl.lit(detection.title, pl.String).alias("title"),
        pl.col("first_seen").cast(pl.Datetime("us", "UTC")),
        pl.col("last_seen").cast(pl.Datetime("us", "UTC")),
    )
    frame = frame.select([pl.col(name).cast(dtype) for name, dtype in ALERT_SCHEMA.items()])
    bad = sorted(set(frame["severity"].to_list()) - set(SEVERITIES))
    if bad:
        raise AnalyzerError(f"detection {detection.id} returned unknown severity {bad} (use {', '.join(SEVERITIES)})")
    return frame


def run_detections(
    spark: SparkSession,
    *,
    since: TimeLike = None,
    until: TimeLike = None,
    only: Iterable[str] | None = None,
    params: Overrides | None = None,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    catalogue: Catalogue | None = None,
    timeout: float | None = None,
) -> DetectionRun:
    """:func:`analyzer.detect.run_detections` on Spark: the selected detections over ``events`` (see
    :func:`open_dataset`) in ``[since, until)``, with the same parameters, lookbacks, allowlist and
    order. Every detection is transpiled before the first query runs: one that cannot be is an error
    naming it and the construct."""
    from analyzer.alerts.shape import by_urgency
    from analyzer.detect.allowlist import Allowlist
    from analyzer.detect.catalogue import load_catalogue
    from analyzer.detect.engine import DetectionRun
    from analyzer.detect.params import resolve_params
    from analyzer.detect.shape import ALERT_COLUMNS, empty_alerts
    from analyzer.window import parse_window

    deadline = time.monotonic() + timeout if timeout else None
    catalogue = catalogue if catalogue is not None else load_catalogue()
    selected = catalogue.select(only)
    effective = resolve_params(catalogue, selected, params)
    rules = allowlist if isinstance(allowlist, Allowlist) else Allowlist.from_mapping(allowlist)
    window = parse_window(since, until)
    dialects.check_catalogue(selected, ["spark"])

    def lookback_of(detection: Detection) -> timedelta:
        if not detection.lookback or window.since is None:
            return timedelta(0)
        return timedelta(minutes=int(effective[detection.id][detection.lookback]))

    frames: list[pl.DataFrame] = []
    durations: dict[str, float] = {}
    current: timedelta | None = None
    group = f"analyzer-{id(frames)}"
    try:
        for detection in sorted(selected, key=lookback_of):
            started = time.perf_counter()
            lookback = lookback_of(detection)
            if window.bounded and lookback != current:
                shadow(spark, window_predicate(window, lookback))
                current = lookback
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            with _time_limit(spark, left, group):
                frame = _run_one(spark, detection, effective[detection.id])
            if lookback and window.since is not None:
                frame = frame.filter(pl.col("last_seen") >= window.since)
            frames.append(frame)
            durations[detection.id] = time.perf_counter() - started
    finally:
        if window.bounded:
            shadow(spark, None)

    alerts = pl.concat(frames, how="vertical") if frames else empty_alerts()
    suppressed_mask = rules.matches(alerts)
    suppressed_rows = alerts.filter(suppressed_mask)
    alerts = by_urgency(alerts.filter(~suppressed_mask).select(ALERT_COLUMNS))
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


def data_extent(spark: SparkSession, window: Window) -> tuple[int, datetime | None, datetime | None]:
    """The window's event records (every delivery), and the dataset's first and last event."""
    predicate = window_predicate(window) or "true"
    sql = f"SELECT count_if({predicate}), min(eventTime), max(eventTime) FROM events_all"  # noqa: S608 - ours
    row = spark.sql(sql).collect()[0]
    first, last = row[1], row[2]
    return (
        int(row[0] or 0),
        first.replace(tzinfo=UTC) if isinstance(first, datetime) else None,
        last.replace(tzinfo=UTC) if isinstance(last, datetime) else None,
    )


def console_signins(spark: SparkSession, window: Window) -> pl.DataFrame:
    """:func:`analyzer.alerts.summary.console_signins` on Spark: the same query, transpiled."""
    from analyzer.alerts.summary import SIGNIN_SCHEMA, SIGNINS_SQL

    since, until = window.since, window.until
    values = {
        "since": since,
        "until": until,
        "since_date": since.date() if since else None,
        "until_date": until.date() if until else None,
    }
    sql = dialects.transpile(SIGNINS_SQL, "spark", name="the sign-in summary", values=values, pretty=False).sql
    frame = pl.from_arrow(to_arrow(spark.sql(sql)))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("event_time").cast(pl.Datetime("us", "UTC"))).cast(pl.Schema(SIGNIN_SCHEMA))


def options_from(table: Any) -> SparkOptions:
    """The config file's ``[spark]`` table as :class:`SparkOptions` (``conf``: spark-submit's ``KEY=VALUE``)."""
    conf: dict[str, str] = {}
    for entry in getattr(table, "conf", None) or []:
        name, sep, value = str(entry).partition("=")
        if not sep or not name.strip():
            raise AnalyzerError(f"[spark] conf: {entry!r} is not KEY=VALUE (e.g. spark.driver.memory=4g)")
        conf[name.strip()] = value.strip()
    return SparkOptions(
        master=getattr(table, "master", None), app_name=getattr(table, "app_name", None) or "analyzer", conf=conf
    )


def detect(
    data: str | Path,
    window: Window,
    *,
    only: Iterable[str] | None = None,
    params: Overrides | None = None,
    allowlist: Allowlist | Mapping[str, Any] | None = None,
    catalogue: Catalogue | None = None,
    timeout: float | None = None,
    signins: bool = True,
    options: SparkOptions | None = None,
) -> tuple[DetectionRun, pl.DataFrame | None, tuple[int, datetime | None, datetime | None]]:
    """What ``detect --engine spark`` runs: the catalogue, the sign-ins for MFA coverage, and what the window
    holds, all on Spark over the dataset at ``data`` (a local dataset or a published prefix URL)."""
    from analyzer.detect.catalogue import load_catalogue

    catalogue = catalogue if catalogue is not None else load_catalogue()
    dialects.check_catalogue(catalogue.select(only), ["spark"])  # before Spark starts: a construct is named now
    spark = session(options)
    open_dataset(spark, data)
    run = run_detections(
        spark,
        since=window.since,
        until=window.until,
        only=only,
        params=params,
        allowlist=allowlist,
        catalogue=catalogue,
        timeout=timeout,
    )
    signed = console_signins(spark, window) if signins else None
    return run, signed, data_extent(spark, window)


def run_case(spark: SparkSession, catalogue: Catalogue, detection: Detection, case: Any) -> DetectionRun:
    """One of a detection's own cases on Spark: its records through the ingest path (as
    :func:`analyzer.detect.cases.run_case` has them), the same views, the detection with the case's parameters."""
    from analyzer.detect.cases import _table  # the records decoded and built exactly as a log file's

    superseded = None
    if case.superseded:
        old = _table(case.superseded, "case.json")
        superseded = old.append_column("superseded_by", pa.array(["case"] * old.num_rows, pa.string())).append_column(
            "superseded_at", pa.array([datetime(2000, 1, 1, tzinfo=UTC)] * old.num_rows, pa.timestamp("us", tz="UTC"))
        )
    open_table(spark, _table(case.records, "case.json"), superseded)
    return run_detections(spark, only=[detection.id], params={detection.id: case.params}, catalogue=catalogue)
