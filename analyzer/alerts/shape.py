"""The alert shape as the alerts station uses it: normalising frames, ordering, filtering.

The shape itself (columns, types, severities) is defined once, by the detect station, in
:mod:`analyzer.detect.shape`; this module only adapts any frame or list of dicts to it, so renderers
and summaries can be exercised with hand-made alerts and never need a dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from analyzer.detect.shape import ALERT_COLUMNS, ALERT_SCHEMA, SEVERITIES, empty_alerts, severity_rank

__all__ = [
    "ALERT_COLUMNS",
    "ALERT_SCHEMA",
    "SEVERITIES",
    "alerts_frame",
    "at_or_above",
    "by_urgency",
    "empty_alerts",
    "rank",
    "severity_rank",
]


def alerts_frame(rows: Sequence[Mapping[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """Alerts in the canonical column order and types (naive timestamps are taken as UTC).

    Accepts the engine's frame or plain dicts (tests, notebooks); missing columns are NULL.
    """
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows), infer_schema_length=None)
    if frame.width == 0:
        return empty_alerts()
    frame = frame.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in ALERT_SCHEMA.items()
                               if name not in frame.columns)
    columns: list[pl.Expr] = []
    for name, dtype in ALERT_SCHEMA.items():
        if isinstance(dtype, pl.Datetime):
            column = pl.col(name)
            current = frame.schema[name]
            if isinstance(current, pl.Datetime):
                column = column.dt.replace_time_zone("UTC") if current.time_zone is None else column
                columns.append(column.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(name))
            else:
                columns.append(column.cast(pl.String).str.to_datetime(time_zone="UTC", time_unit="us").alias(name))
        else:
            columns.append(pl.col(name).cast(dtype).alias(name))
    return frame.select(columns)


def rank() -> pl.Expr:
    """The ``severity`` column as its rank in :data:`SEVERITIES` (-1 for anything else)."""
    ranks = {name: i for i, name in enumerate(SEVERITIES)}
    return pl.col("severity").str.to_lowercase().replace_strict(ranks, default=-1, return_dtype=pl.Int64)


def at_or_above(alerts: pl.DataFrame, severity: str) -> pl.DataFrame:
    """The alerts whose severity is ``severity`` or more urgent."""
    wanted = [s for s in SEVERITIES if severity_rank(s) >= severity_rank(severity)]
    return alerts.filter(pl.col("severity").str.to_lowercase().is_in(wanted))


#: After severity (most severe first), what orders alerts: oldest first, then these, so that ties are
#: fully broken and a rerun lists the same alerts in the same order.
URGENCY_TIES: tuple[str, ...] = ("first_seen", "detection_id", "principal", "source_ip", "last_seen", "details")


def by_urgency(alerts: pl.DataFrame) -> pl.DataFrame:
    """Alerts most severe first, then oldest first (ties: :data:`URGENCY_TIES`): the one order, in which
    :func:`~analyzer.detect.run_detections` returns alerts and every renderer lists them."""
    if alerts.is_empty():
        return alerts
    ties = [name for name in URGENCY_TIES if name in alerts.columns]
    return alerts.sort([rank(), *ties], descending=[True, *(False for _ in ties)], nulls_last=True,
                       maintain_order=True)
