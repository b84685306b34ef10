"""Alerts: summaries (Polars) and renderers (terminal, JSON, JSON Lines, Markdown, HTML).

Renderers are pure functions from a :class:`Report` to text; the caller decides where it goes::

    from analyzer.alerts import build_report, console_signins, render
    report = build_report(run.alerts, suppressed=run.suppressed, signins=console_signins(con))
    print(render(report, "markdown"))
"""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

# Imported now, not on first use: the module `render` would otherwise hide the function `render`.
from analyzer.alerts.render import Format, render, render_json, render_jsonl

if TYPE_CHECKING:
    from analyzer.alerts.records import alert_dicts
    from analyzer.alerts.shape import (
        ALERT_COLUMNS,
        SEVERITIES,
        alerts_frame,
        at_or_above,
        empty_alerts,
        severity_rank,
    )
    from analyzer.alerts.summary import (
        Report,
        Summary,
        build_report,
        console_signins,
        mfa_coverage,
        signin_series,
        summarize,
    )
else:
    __getattr__, __dir__ = lazy_exports(__name__, {
        "analyzer.alerts.records": ["alert_dicts"],
        "analyzer.alerts.shape": ["ALERT_COLUMNS", "SEVERITIES", "alerts_frame", "at_or_above", "empty_alerts",
                                  "severity_rank"],
        "analyzer.alerts.summary": ["Report", "Summary", "build_report", "console_signins", "mfa_coverage",
                                    "signin_series", "summarize"],
    })

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
