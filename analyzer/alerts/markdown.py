"""The ``markdown`` format: a report to paste into a ticket, a pull request or a wiki.

Every log value goes through :func:`analyzer.alerts.sanitize.markdown`, so none can break out of
its table cell, open a code span, or smuggle HTML into a renderer that allows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from analyzer.alerts import sanitize
from analyzer.alerts.display import NO_SIGNINS, iso_seconds, window_text
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import CHANGE_COLUMN, UNKNOWN, Report, change_mark

COVERAGE_ROWS = 50
ALERT_ROWS = 1000  # beyond this a ticket is unreadable; json, jsonl and html carry every alert


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return iso_seconds(value)
    if isinstance(value, list):
        return sanitize.markdown(", ".join(str(v) for v in value))
    return sanitize.markdown(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: set[int] | None = None) -> list[str]:
    numeric = numeric or set()
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if i in numeric else "---" for i in range(len(headers))) + "|")
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    summary = report.summary
    lines = ["# CloudTrail detections", "", f"Window: {window_text(report, 'to', iso_seconds)}", ""]
    ran = len(report.detections)
    fired = sum(1 for n in report.detections.values() if n)
    changes = report.changes
    lines.append(
        f"**{summary.alerts} alert(s)** covering {summary.events} distinct event(s)"
        + (f" from {fired} of {ran} detection(s)" if ran else "")
        + f"; {summary.suppressed} suppressed by allowlists."
        + (f" Since the last report: {changes['new']} new, {changes['escalated']} escalated, "
           f"{changes['grew']} grown." if changes is not None else "")
    )
    lines.append("")
    if summary.alerts:
        lines += ["## By detection", ""]
        lines += _table(
            ["severity", "detection", "title", "alerts", "events", "first seen", "last seen"],
            ([r["severity"], r["detection_id"], r["title"], r["alerts"], r["events"], r["first_seen"], r["last_seen"]]
             for r in summary.by_detection.iter_rows(named=True)),
            numeric={3, 4},
        )
        for title, key, frame in (
            ("Top principals", "principal", summary.top_principals),
            ("Top source IPs", "source_ip", summary.top_source_ips),
        ):
            lines += [f"## {title}", ""]
            lines += _table(
                [key.replace("_", " "), "max severity", "alerts", "events", "detections"],
                ([r[key], r["severity"], r["alerts"], r["events"], r["detections"]]
                 for r in frame.iter_rows(named=True)),
                numeric={2, 3},
            )
    if summary.mfa_coverage is not None:
        scope = "the alerts' principals" if summary.coverage_scope == "alerted" else "successful sign-ins"
        lines += [f"## MFA coverage of {scope} (console and IAM Identity Center)", ""]
        coverage = summary.mfa_coverage
        if coverage.height:
            lines += _table(
                ["principal", "with MFA", "without MFA", "federated", "unknown", "total"],
                ([r["principal"], r["with_mfa"], r["without_mfa"], r["federated"], r["unknown"], r["total"]]
                 for r in coverage.head(COVERAGE_ROWS).iter_rows(named=True)),
                numeric={1, 2, 3, 4, 5},
            )
            if coverage.height > COVERAGE_ROWS:
                lines += [f"... and {coverage.height - COVERAGE_ROWS} more principal(s).", ""]
        else:
            lines += [NO_SIGNINS[summary.coverage_scope], ""]
    lines += ["## Alerts", ""]
    if summary.alerts:
        marked = changes is not None
        lines += _table(
            [*(["since last report"] if marked else []), "severity", "detection", "principal", "user name",
             "source IP", "user agent", "account", "region", "events", "first seen", "last seen"],
            ([*([change_mark(a[CHANGE_COLUMN])] if marked else []),
              a["severity"], a["detection_id"], a["principal"] or UNKNOWN, a["user_name"], a["source_ip"],
              a["user_agent"], a["account_id"], a["region"], a["count"], a["first_seen"], a["last_seen"]]
             for a in by_urgency(report.alerts).head(ALERT_ROWS).iter_rows(named=True)),
            numeric={9 if marked else 8},
        )
        if report.alerts.height > ALERT_ROWS:
            lines += [f"... and {report.alerts.height - ALERT_ROWS} more alert(s), less urgent: see the json, "
                      "jsonl or html report for all of them.", ""]
    else:
        lines += ["No alerts.", ""]
    return "\n".join(lines)
