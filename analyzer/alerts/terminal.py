"""The ``table`` format: rich tables for a human at a terminal.

Every cell is a :class:`rich.text.Text` built from :func:`analyzer.alerts.sanitize.terminal`, so
log values can carry neither escape sequences nor rich markup (``[bold]``) to the screen.
"""

from __future__ import annotations

import io
from datetime import datetime

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.alerts import sanitize
from analyzer.alerts.records import iso
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import UNKNOWN, Report

#: Principals listed in the MFA coverage table (those without MFA sort first).
COVERAGE_ROWS = 20
#: Alerts listed (most urgent first): a terminal is for reading, the other formats carry them all.
ALERT_ROWS = 50

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _cell(value: object, style: str = "") -> Text:
    if isinstance(value, datetime):
        value = _time(value)
    elif isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return Text(sanitize.terminal(value), style=style)


def _time(value: datetime | None) -> str:
    text = iso(value)
    return text.replace("T", " ").removesuffix("Z") if text else ""


def _severity(value: str | None) -> Text:
    return _cell(value, SEVERITY_STYLE.get((value or "").lower(), ""))


def _table(title: str, headers: list[str], rows: list[list[Text]], *, numeric: set[int] | None = None) -> Table:
    """Headers ending in ``*`` may wrap (names, ARNs); all others stay on one line."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold", expand=False)
    for i, header in enumerate(headers):
        wraps = header.endswith("*")
        table.add_column(
            header.rstrip("*"), justify="right" if i in (numeric or set()) else "left",
            overflow="fold", no_wrap=not wraps, ratio=1 if wraps else None,
        )
    for row in rows:
        table.add_row(*row)
    return table


def _when(first: datetime | None, last: datetime | None) -> Text:
    """First seen, and on a second line the last seen when it differs (keeps the table narrow)."""
    text = _time(first)
    if last is not None and last != first:
        later = _time(last)
        text += "\n→ " + (later[11:] if later[:10] == text[:10] else later)
    return Text(text)


def alerts_table(alerts: pl.DataFrame, limit: int = ALERT_ROWS) -> Table:
    """One line per alert, most severe first, at most ``limit`` (account, user agent, details: json/html)."""
    rows = [
        [
            _severity(a["severity"]),
            _cell(a["detection_id"]),
            _cell(a["principal"] or a["user_name"] or UNKNOWN),
            _cell(a["source_ip"]),
            _cell(a["count"]),
            _when(a["first_seen"], a["last_seen"]),
        ]
        for a in by_urgency(alerts).head(limit).iter_rows(named=True)
    ]
    headers = ["severity", "detection", "principal*", "source IP", "events", "seen (UTC)"]
    more = alerts.height - limit
    title = f"Alerts ({alerts.height})" if more <= 0 else f"Alerts (the {limit} most urgent of {alerts.height})"
    table = _table(title, headers, rows, numeric={4})
    if more > 0:
        table.caption = f"... and {more} more: the json, jsonl, markdown and html formats list them all"
        table.caption_justify = "left"
    return table


def render_table(report: Report, *, width: int = 120, color: bool = False, alerts_only: bool = False) -> str:
    """The report as terminal text; ``color`` adds ANSI styles (ours only), ``alerts_only`` drops the summary."""
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=color, no_color=not color, color_system="standard" if color else None,
        highlight=False, emoji=False, markup=False, legacy_windows=False, soft_wrap=False,
    )
    summary = report.summary
    if alerts_only:
        if summary.alerts:
            console.print(alerts_table(report.alerts))
        return buffer.getvalue()
    window = f"{_time(report.since) or 'start of data'} → {_time(report.until) or 'end of data'} (UTC)"
    console.print(Text(f"Window: {window}", style="bold"))
    ran = len(report.detections)
    fired = sum(1 for n in report.detections.values() if n)
    severities = ", ".join(f"{r['alerts']} {r['severity']}" for r in summary.by_severity.to_dicts() if r["alerts"])
    console.print(Text(
        f"{summary.alerts} alert(s) covering {summary.events} event(s)"
        + (f" ({severities})" if severities else "")
        + (f" from {fired} of {ran} detection(s)" if ran else "")
        + f"; {summary.suppressed} suppressed by allowlists"
    ))
    if summary.first_seen:
        console.print(Text(f"Activity seen {_time(summary.first_seen)} → {_time(summary.last_seen)} (UTC)"))
    if summary.alerts:
        console.print()
        console.print(_table(
            "By detection",
            ["severity", "detection", "title*", "alerts", "events", "first seen (UTC)", "last seen (UTC)"],
            [[_severity(r["severity"]), _cell(r["detection_id"]), _cell(r["title"]), _cell(r["alerts"]),
              _cell(r["events"]), _cell(r["first_seen"]), _cell(r["last_seen"])]
             for r in summary.by_detection.iter_rows(named=True)],
            numeric={3, 4},
        ))
        for title, key, frame in (
            ("Top principals", "principal", summary.top_principals),
            ("Top source IPs", "source_ip", summary.top_source_ips),
        ):
            console.print(_table(
                title,
                [key.replace("_", " ") + "*", "max severity", "alerts", "events", "detections*"],
                [[_cell(r[key]), _severity(r["severity"]), _cell(r["alerts"]), _cell(r["events"]),
                  _cell(r["detections"])] for r in frame.iter_rows(named=True)],
                numeric={2, 3},
            ))
    if summary.mfa_coverage is not None:
        coverage = summary.mfa_coverage.head(COVERAGE_ROWS)
        console.print(_table(
            "MFA coverage of successful console sign-ins",
            ["principal*", "with MFA", "without MFA", "federated", "unknown", "total"],
            [[_cell(r["principal"]), _cell(r["with_mfa"]),
              _cell(r["without_mfa"], "bold red" if r["without_mfa"] else ""),
              _cell(r["federated"]), _cell(r["unknown"]), _cell(r["total"])]
             for r in coverage.iter_rows(named=True)],
            numeric={1, 2, 3, 4, 5},
        ) if coverage.height else Text("No successful console sign-ins in the window."))
        if summary.mfa_coverage.height > COVERAGE_ROWS:
            console.print(Text(f"... and {summary.mfa_coverage.height - COVERAGE_ROWS} more principal(s)"))
    if summary.alerts:
        console.print(alerts_table(report.alerts))
    else:
        console.print(Text("No alerts.", style="bold green"))
    return buffer.getvalue()
