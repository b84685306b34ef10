"""Summaries people act on: what fired, who, from where, since when, and MFA coverage.

Everything here returns Polars frames (notebooks use them directly; renderers only format them).
The one exception to "alerts know no SQL" is :func:`console_signins`: MFA coverage is about every
console sign-in, not only the ones that raised an alert, so it reads the ``signins`` view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import polars as pl

from analyzer.alerts.shape import SEVERITIES, alerts_frame, rank
from analyzer.errors import AnalyzerError

UNKNOWN = "(unknown)"
CHANGE_COLUMN = "change"  # only in nightly reports' alert frames: new | escalated | grew | seen
ANNOUNCED_CHANGES = ("new", "escalated", "grew")  # what a report marks; "seen" is left unmarked


def change_mark(change: object) -> str:
    """An alert's mark in a report: its change since the last report, or nothing when seen before."""
    return change if isinstance(change, str) and change in ANNOUNCED_CHANGES else ""

#: One row per sign-in in the window, classified from the ``signins`` view
#: (:mod:`analyzer.store.views`), so the summary and ad-hoc SQL agree: every ``ConsoleLogin``, every
#: IAM Identity Center ``UserAuthentication`` (the step that completes a sign-in), and every failed
#: Identity Center step (a wrong password or a failed MFA code is a failed sign-in attempt, even
#: though no ``UserAuthentication`` follows it). ``mfa`` is with_mfa / without_mfa / unknown (not
#: recorded) / federated (SAML, Identity Center roles, web identity or an external IdP: MFA happens at
#: the identity provider, so CloudTrail says "No").
SIGNINS_SQL = """
select
    eventTime as event_time,
    lower(outcome) as outcome,
    coalesce(principal, user_name) as principal,
    case
        when federated is not null then 'federated'
        when mfa_used then 'with_mfa'
        when mfa_used is null then 'unknown'
        else 'without_mfa'
    end as mfa
from signins
where (event_name in ('ConsoleLogin', 'UserAuthentication') or lower(outcome) = 'failure')
  and ($since_date is null or event_date >= $since_date)
  and ($until_date is null or event_date <= $until_date)
  and ($since is null or eventTime >= $since)
  and ($until is null or eventTime < $until)
"""

MFA_BUCKETS: tuple[str, ...] = ("with_mfa", "without_mfa", "federated", "unknown")

SIGNIN_SCHEMA: dict[str, pl.DataType] = {
    "event_time": pl.Datetime("us", "UTC"),
    "outcome": pl.String(),
    "principal": pl.String(),
    "mfa": pl.String(),
}


def _schema(columns: dict[str, pl.DataType]) -> pl.Schema:
    return pl.Schema(columns)


def console_signins(
    con: duckdb.DuckDBPyConnection, *, since: datetime | None = None, until: datetime | None = None
) -> pl.DataFrame:
    """Every sign-in in ``[since, until)`` with its outcome and MFA bucket (see ``SIGNINS_SQL``)."""
    params = {
        "since": since,
        "until": until,
        "since_date": since.date() if since else None,
        "until_date": until.date() if until else None,
    }
    try:
        frame = pl.from_arrow(con.sql(SIGNINS_SQL, params=params).to_arrow_table())
    except duckdb.Error as exc:
        raise AnalyzerError(f"console sign-in summary failed: {exc}") from exc
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("event_time").dt.replace_time_zone("UTC")).cast(_schema(SIGNIN_SCHEMA))


def data_extent(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, datetime | None]:
    """The first and last event time of the dataset (the ``data_extent`` view): what "start of data"
    and "end of data" are, so a report with an open window can say so in dates."""
    try:
        row = con.execute("select first_event, last_event from data_extent").fetchone()
    except duckdb.Error as exc:
        raise AnalyzerError(f"reading the dataset's first and last event failed: {exc}") from exc
    first, last = row if row else (None, None)
    return (first.astimezone(UTC) if isinstance(first, datetime) else None,
            last.astimezone(UTC) if isinstance(last, datetime) else None)


def mfa_coverage(signins: pl.DataFrame) -> pl.DataFrame:
    """Successful sign-ins (console and Identity Center) per principal: with MFA, without, federated,
    unknown, total.

    Principals with any sign-in without MFA come first (that is what needs acting on).
    """
    ok = signins.filter(pl.col("outcome") == "success")
    return (
        ok.group_by(pl.col("principal").fill_null(UNKNOWN))
        .agg(
            *[(pl.col("mfa") == bucket).sum().cast(pl.Int64).alias(bucket) for bucket in MFA_BUCKETS],
            pl.len().cast(pl.Int64).alias("total"),
            pl.col("event_time").max().alias("last_sign_in"),
        )
        .sort(["without_mfa", "unknown", "total", "principal"], descending=[True, True, True, False])
    )


def signin_series(signins: pl.DataFrame, *, every: Literal["1d", "1h"] = "1d") -> pl.DataFrame:
    """Sign-ins per time bucket (with/without MFA, federated, unknown) and failures, for charts.

    ``spike`` marks buckets whose failures are at least 5 and at least three times the median of
    the window: the failure bursts worth a look.
    """
    schema: dict[str, pl.DataType] = {"bucket": pl.Datetime("us", "UTC")}
    schema |= {name: pl.Int64() for name in (*MFA_BUCKETS, "failures")}
    if signins.is_empty():
        return pl.DataFrame(schema=schema | {"spike": pl.Boolean()})
    success = pl.col("outcome") == "success"
    series = (
        signins.with_columns(pl.col("event_time").dt.truncate(every).alias("bucket"))
        .group_by("bucket")
        .agg(
            *[(success & (pl.col("mfa") == bucket)).sum().cast(pl.Int64).alias(bucket) for bucket in MFA_BUCKETS],
            (pl.col("outcome") == "failure").sum().cast(pl.Int64).alias("failures"),
        )
        .sort("bucket")
    )
    full = series.select(pl.datetime_range(pl.col("bucket").min(), pl.col("bucket").max(), every).alias("bucket"))
    series = full.join(series, on="bucket", how="left").fill_null(0)
    return series.with_columns(
        ((pl.col("failures") >= 5) & (pl.col("failures") >= 3 * pl.col("failures").median())).alias("spike")
    ).cast(_schema(schema | {"spike": pl.Boolean()}))


#: An IAM user's or the root user's ARN: the principals that failed sign-ins name only by user name.
_USER_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:(user/.+|root)$"


def _one_name_per_user(alerts: pl.DataFrame) -> pl.DataFrame:
    """A failed sign-in records only the user name (``victor``), a successful one the ARN: count
    them as one principal (per account), shown by its ARN when any alert knows it."""
    user_arn = pl.col("principal").str.contains(_USER_ARN)
    same_user = (user_arn | (pl.col("principal") == pl.col("user_name"))) & pl.col("user_name").is_not_null()
    keyed = alerts.with_columns(
        pl.when(same_user)
        .then(pl.concat_str([pl.col("account_id").fill_null(""), pl.lit("\0"), pl.col("user_name")]))
        .otherwise(pl.col("principal"))
        .alias("_who")
    )
    arns = keyed.filter(user_arn).group_by("_who").agg(pl.col("principal").min().alias("_arn"))
    return (
        keyed.join(arns, on="_who", how="left")
        .with_columns(pl.coalesce("_arn", "principal").alias("principal"))
        .drop("_who", "_arn")
    )


def distinct_events(alerts: pl.DataFrame, keys: Sequence[str] = ()) -> pl.DataFrame:
    """Distinct events covered per ``keys`` (one row without keys), as column ``events``.

    Alerts overlap: one failed sign-in is in a console-login-failures alert *and* a brute-force
    alert, so summing ``count`` over alerts counts it twice. Events are counted once by their
    ``event_ids``; an alert that lists no event id adds its ``count`` (nothing to match it by).
    ``keys`` must hold no NULL (fill them first): a NULL key matches nothing in a join.
    """
    key_exprs = [pl.col(k) for k in keys]
    listed = pl.col("event_ids").list.len().fill_null(0) > 0
    ids = (
        alerts.filter(listed).select(*key_exprs, pl.col("event_ids")).explode("event_ids")
        .drop_nulls("event_ids")
    )
    unlisted = alerts.filter(~listed)
    if keys:
        named = ids.group_by(list(keys)).agg(pl.col("event_ids").n_unique().cast(pl.Int64).alias("_ids"))
        rest = unlisted.group_by(list(keys)).agg(pl.col("count").sum().cast(pl.Int64).alias("_rest"))
        every = alerts.select(list(keys)).unique()
        return (
            every.join(named, on=list(keys), how="left")
            .join(rest, on=list(keys), how="left")
            .select(*key_exprs, (pl.col("_ids").fill_null(0) + pl.col("_rest").fill_null(0)).alias("events"))
        )
    total = ids["event_ids"].n_unique() + int(unlisted["count"].sum() or 0)
    return pl.DataFrame({"events": [total]}, schema={"events": pl.Int64()})


def _top(alerts: pl.DataFrame, key: str, limit: int) -> pl.DataFrame:
    ranked = alerts.with_columns(pl.col(key).fill_null(UNKNOWN), rank().alias("_rank"))
    return (
        ranked.group_by(key)
        .agg(
            pl.len().cast(pl.Int64).alias("alerts"),
            pl.col("_rank").max().alias("_rank"),
            pl.col("detection_id").unique().sort().alias("detections"),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
        )
        .join(distinct_events(ranked, [key]), on=key, how="left")
        .sort(["_rank", "alerts", "events", key], descending=[True, True, True, False])
        .head(limit)
        .with_columns(pl.col("_rank").replace_strict(dict(enumerate(SEVERITIES)), default=None, return_dtype=pl.String)
                      .alias("severity"))
        .select(key, "severity", "alerts", "events", "detections", "first_seen", "last_seen")
    )


@dataclass(frozen=True)
class Summary:
    """The summary of one detection run (see :func:`summarize`)."""

    alerts: int
    events: int
    suppressed: int
    first_seen: datetime | None
    last_seen: datetime | None
    by_detection: pl.DataFrame
    by_severity: pl.DataFrame
    top_principals: pl.DataFrame
    top_source_ips: pl.DataFrame
    mfa_coverage: pl.DataFrame | None = None
    signins: pl.DataFrame | None = None
    #: "all" principals that signed in, or only those the alerts name ("alerted": ``detect --only``)
    coverage_scope: Literal["all", "alerted"] = "all"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the JSON report."""
        result: dict[str, Any] = {
            "alerts": self.alerts,
            "events": self.events,
            "suppressed": self.suppressed,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "by_severity": {row["severity"]: row["alerts"] for row in self.by_severity.to_dicts()},
            "by_detection": self.by_detection.to_dicts(),
            "top_principals": self.top_principals.to_dicts(),
            "top_source_ips": self.top_source_ips.to_dicts(),
        }
        if self.mfa_coverage is not None:
            result["mfa_coverage"] = self.mfa_coverage.to_dicts()
        if self.signins is not None:
            result["signins"] = self.signins.to_dicts()
        return result


def summarize(
    alerts: pl.DataFrame,
    *,
    suppressed: int = 0,
    signins: pl.DataFrame | None = None,
    every: Literal["1d", "1h"] = "1d",
    top: int = 10,
    coverage_scope: Literal["all", "alerted"] = "all",
) -> Summary:
    """Summarise alerts (and, given the run's sign-ins, MFA coverage and a time series).

    Order is by urgency: most severe detections, principals and addresses first. Event counts are
    distinct events (:func:`distinct_events`). ``coverage_scope="alerted"`` keeps in the MFA
    coverage only the principals the alerts name (a run of a few detections is about them).
    """
    frame = alerts_frame(alerts)
    by_detection = (
        frame.group_by("detection_id", "severity")
        .agg(
            pl.col("title").first(),
            pl.len().cast(pl.Int64).alias("alerts"),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
        )
        .join(distinct_events(frame, ["detection_id", "severity"]), on=["detection_id", "severity"], how="left")
        .select("detection_id", "severity", "title", "alerts", "events", "first_seen", "last_seen")
        .with_columns(rank().alias("_rank"))
        .sort(["_rank", "alerts", "detection_id"], descending=[True, True, False])
        .drop("_rank")
    )
    counts = dict(frame.group_by("severity").len().iter_rows())
    by_severity = pl.DataFrame(
        {"severity": list(reversed(SEVERITIES)), "alerts": [int(counts.get(s, 0)) for s in reversed(SEVERITIES)]},
        schema={"severity": pl.String(), "alerts": pl.Int64()},
    )
    return Summary(
        alerts=frame.height,
        events=int(distinct_events(frame)["events"][0]) if frame.height else 0,
        suppressed=suppressed,
        first_seen=frame["first_seen"].min() if frame.height else None,  # type: ignore[arg-type]
        last_seen=frame["last_seen"].max() if frame.height else None,  # type: ignore[arg-type]
        by_detection=by_detection,
        by_severity=by_severity,
        top_principals=_top(_one_name_per_user(frame), "principal", top),
        top_source_ips=_top(frame, "source_ip", top),
        mfa_coverage=_coverage(signins, frame, coverage_scope) if signins is not None else None,
        signins=signin_series(signins, every=every) if signins is not None else None,
        coverage_scope=coverage_scope,
    )


def _coverage(signins: pl.DataFrame, alerts: pl.DataFrame, scope: Literal["all", "alerted"]) -> pl.DataFrame:
    coverage = mfa_coverage(signins)
    if scope == "all":
        return coverage
    named = pl.concat([alerts["principal"], alerts["user_name"]]).drop_nulls().unique()
    return coverage.filter(pl.col("principal").is_in(named.implode()))


@dataclass(frozen=True)
class Report:
    """What every renderer gets: the alerts, their summary and how the run was made."""

    alerts: pl.DataFrame
    summary: Summary
    since: datetime | None = None
    until: datetime | None = None
    generated_at: datetime | None = None
    detections: dict[str, int] = field(default_factory=dict)  # detection id → alerts (0 included)
    params: dict[str, Any] = field(default_factory=dict)  # effective parameters, for the record
    data_start: datetime | None = None  # the dataset's first event: what an open "since" means
    data_end: datetime | None = None  # ... and its last one: what an open "until" means

    @property
    def changes(self) -> dict[str, int] | None:
        """How many alerts are new, escalated or grew since the last run (nightly reports), else None."""
        if CHANGE_COLUMN not in self.alerts.columns:
            return None
        counts = dict(self.alerts.group_by(CHANGE_COLUMN).len().iter_rows())
        return {change: int(counts.get(change, 0)) for change in ANNOUNCED_CHANGES}


def build_report(
    alerts: pl.DataFrame,
    *,
    suppressed: int = 0,
    signins: pl.DataFrame | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    generated_at: datetime | None = None,
    detections: dict[str, int] | None = None,
    params: dict[str, Any] | None = None,
    changes: Sequence[str] | None = None,
    coverage_scope: Literal["all", "alerted"] = "all",
    data_start: datetime | None = None,
    data_end: datetime | None = None,
) -> Report:
    """A :class:`Report`; the chart buckets by hour when the sign-ins span two days or less.

    ``changes`` (one per alert, in order: new / escalated / grew / seen, as the nightly job's alert
    state says) makes the Markdown and HTML reports mark what is new since the last report.
    ``data_start``/``data_end`` (the first and last event of the dataset) let a report with an open
    window say which dates "start of data" and "end of data" are.
    """
    frame = alerts_frame(alerts)
    if changes is not None:
        frame = frame.with_columns(pl.Series(CHANGE_COLUMN, list(changes), dtype=pl.String))
    every: Literal["1d", "1h"] = "1d"
    if signins is not None and not signins.is_empty():
        start = since or signins["event_time"].min()
        end = until or signins["event_time"].max()
        if isinstance(start, datetime) and isinstance(end, datetime) and (end - start).total_seconds() <= 2 * 86400:
            every = "1h"
    return Report(
        alerts=frame,
        summary=summarize(frame, suppressed=suppressed, signins=signins, every=every, coverage_scope=coverage_scope),
        since=since,
        until=until,
        data_start=data_start,
        data_end=data_end,
        generated_at=generated_at,
        detections=dict(detections or {}),
        params=dict(params or {}),
    )
