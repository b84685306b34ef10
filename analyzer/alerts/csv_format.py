"""The ``csv`` format: one row per alert, for a spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR as a formula,
and a user agent or a typed user name can be ``=HYPERLINK(…)``: every text cell goes through
:func:`analyzer.alerts.sanitize.spreadsheet` (a leading ``'``). The csv module quotes commas, quotes
and line breaks, so a value cannot add a column or a row.
"""

from __future__ import annotations

import csv
import io

import polars as pl

from analyzer.alerts.records import fingerprints, iso_column
from analyzer.alerts.sanitize import spreadsheet, visible
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import Report

#: The columns, in order: who/where/when first, then the evidence (event ids, details as JSON text).
COLUMNS = ("fingerprint", "severity", "detection_id", "title", "first_seen", "last_seen", "account_id", "region",
           "principal", "user_name", "source_ip", "user_agent", "count", "event_ids", "details")


def render_csv(report: Report, *, terminal: bool = False) -> str:
    """The alerts as CSV with a header, most urgent first; times ISO 8601 UTC, event ids space-separated.

    ``terminal``: control characters written as escapes (a terminal would obey them; a file keeps them).
    """
    alerts = by_urgency(report.alerts)
    frame = alerts.with_columns(
        pl.Series("fingerprint", fingerprints(alerts), dtype=pl.String),
        iso_column("first_seen"),
        iso_column("last_seen"),
        pl.col("event_ids").list.join(" "),
        pl.col("count").cast(pl.String),
    ).select(COLUMNS)

    def cell(value: str | None) -> str:
        if value is None:
            return ""
        return visible(spreadsheet(value)) if terminal else spreadsheet(value)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([cell(v) for v in row] for row in frame.iter_rows())
    return out.getvalue()
