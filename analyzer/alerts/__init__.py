"""Alerts: summaries (Polars) and renderers (terminal, JSON, JSON Lines, Markdown, HTML).

Renderers are pure functions from a :class:`Report` to text; the caller decides where it goes::

    from analyzer.alerts import build_report, console_signins, render
    report = build_report(run.alerts, suppressed=run.suppressed, signins=console_signins(con))
    print(render(report, "markdown"))
"""

from analyzer.alerts.records import alert_dicts
from analyzer.alerts.render import Format, render, render_json, render_jsonl
from analyzer.alerts.shape import ALERT_COLUMNS, SEVERITIES, alerts_frame, at_or_above, empty_alerts, severity_rank
from analyzer.alerts.summary import (
    Report,
    Summary,
    build_report,
    console_signins,
    mfa_coverage,
    signin_series,
    summarize,
)

__all__ = [
    "ALERT_COLUMNS",
    "SEVERITIES",
    "Format",
    "Report",
    "Summary",
    "alert_dicts",
    "alerts_frame",
    "at_or_above",
    "build_report",
    "console_signins",
    "empty_alerts",
    "mfa_coverage",
    "render",
    "render_json",
    "render_jsonl",
    "severity_rank",
    "signin_series",
    "summarize",
]
