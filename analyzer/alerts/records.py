"""Alerts as plain JSON-ready dicts: the shape SIEMs receive (``json`` and ``jsonl`` formats)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import orjson
import polars as pl

from analyzer.alerts.shape import alerts_frame

# JSON allows these raw, but a terminal or a browser may act on them: always written as \uXXXX.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def iso(value: datetime | date | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (seconds, plus the fraction when there is one)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return value.isoformat()
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def iso_column(name: str) -> pl.Expr:
    """:func:`iso` as a Polars expression (thousands of alerts, no Python loop)."""
    column = pl.col(name).dt.convert_time_zone("UTC")
    whole = column.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return pl.when(column.dt.microsecond() == 0).then(whole).otherwise(
        column.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    ).alias(name)


def details_object(text: str | None) -> Any:
    """The ``details`` column (JSON text) as an object; text that is not JSON is kept as a string."""
    if text is None or text == "":
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def alert_dicts(alerts: pl.DataFrame) -> list[dict[str, Any]]:
    """One dict per alert with exactly the alert keys, in order; timestamps ISO-8601 Z."""
    frame = alerts_frame(alerts).with_columns(iso_column("first_seen"), iso_column("last_seen"))
    rows = frame.to_dicts()
    for row in rows:
        row["event_ids"] = list(row["event_ids"] or [])
        row["details"] = details_object(row["details"])
    return rows


def fingerprints(alerts: pl.DataFrame) -> list[str]:
    """Each alert's fingerprint, as the nightly alert state names a new alert and SNS messages carry
    it (:func:`analyzer.alerts.state.fingerprint`): SIEMs deduplicate on it across runs."""
    from analyzer.alerts.state import fingerprint

    keys = ("detection_id", "account_id", "principal", "user_name", "source_ip", "event_ids", "first_seen")
    frame = alerts_frame(alerts).select(*keys[:-2], pl.col("event_ids").list.head(1), iso_column("first_seen"))
    return [fingerprint(dict(zip(keys, row, strict=True))) for row in frame.iter_rows()]


def alert_json_lines(alerts: pl.DataFrame, *, fingerprint: bool = False) -> list[str]:
    """Each alert as one line of JSON text, equal to ``dumps(alert_dicts(alerts)[i])`` but built by Polars.

    Thousands of alerts are common on a noisy account; building dicts in Python for each one was
    most of a run's time. ``details`` is already JSON text (made by the detection's SQL), so it is
    spliced in as is when it parses, and kept as a JSON string otherwise. ``fingerprint`` puts the
    alert's :func:`fingerprints` first, as ``"fingerprint"`` (the key SNS messages use).
    """
    frame = alerts_frame(alerts).with_columns(iso_column("first_seen"), iso_column("last_seen"))
    others = [name for name in frame.columns if name != "details"]
    encoded = frame.select(
        pl.struct(others).struct.json_encode().alias("head"),
        pl.when(pl.col("details").fill_null("") == "").then(pl.lit("{}")).otherwise(pl.col("details")),
    )
    names = fingerprints(frame) if fingerprint else []
    lines = []
    for i, (head, details) in enumerate(encoded.iter_rows()):
        if fingerprint:
            head = f'{{"fingerprint":"{names[i]}",{head[1:]}'  # hex digits: nothing to escape
        try:
            value = orjson.loads(details)
        except orjson.JSONDecodeError:
            value = details
            details = orjson.dumps(details).decode()
        if "\n" in details:  # pretty-printed by its query: one line per alert, always
            details = orjson.dumps(value).decode()
        lines.append(f'{head[:-1]},"details":{details}}}')
    return _UNSAFE_IN_JSON.sub(_escape, "\n".join(lines)).split("\n") if lines else []


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(value: Any, *, indent: bool = False) -> str:
    """JSON text; control, bidi and C1 characters are escaped, so it is safe to print anywhere."""
    option = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
    text = orjson.dumps(value, default=_default, option=option | (orjson.OPT_INDENT_2 if indent else 0)).decode()
    return _UNSAFE_IN_JSON.sub(_escape, text)


def _default(value: Any) -> Any:
    if isinstance(value, pl.DataFrame):
        return value.to_dicts()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
