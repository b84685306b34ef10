"""One entry point for every output format; each renderer is a pure function returning text.

The renderers are imported when used: the CLI imports :class:`Format` at start (start-up time).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.alerts.summary import Report


class Format(StrEnum):
    """The output formats of ``analyzer detect --format``."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"
    html = "html"
    csv = "csv"
    ocsf = "ocsf"


def render_jsonl(report: Report) -> str:
    """One JSON object per alert: its ``fingerprint``, then exactly the alert shape (for SIEMs); empty
    text when no alerts."""
    from analyzer.alerts.records import alert_json_lines
    from analyzer.alerts.shape import by_urgency

    return "".join(line + "\n" for line in alert_json_lines(by_urgency(report.alerts), fingerprint=True))


def render_json(report: Report) -> str:
    """One JSON document: the run (window, parameters), its summary and every alert (with its fingerprint)."""
    from analyzer.alerts.records import alert_json_lines, dumps, iso
    from analyzer.alerts.shape import by_urgency

    document: dict[str, Any] = {
        "generated_at": iso(report.generated_at),
        "window": {"since": iso(report.since), "until": iso(report.until)},
        "data": {"first_event": iso(report.data_start), "last_event": iso(report.data_end)},
        "detections": report.detections,
        "summary": report.summary.as_dict(),
        "parameters": report.params,
        "alerts": [],
    }
    head = dumps(document, indent=True)
    assert head.endswith('  "alerts": []\n}')
    lines = alert_json_lines(by_urgency(report.alerts), fingerprint=True)
    if not lines:
        return head + "\n"
    alerts = ",\n".join(f"    {line}" for line in lines)  # one alert per line inside the indented document
    return head.removesuffix("[]\n}") + f"[\n{alerts}\n  ]\n}}\n"


def render(report: Report, fmt: Format | str = Format.table, *, width: int = 120, color: bool = False,
           alerts_only: bool = False, terminal: bool = False) -> str:
    """The report in ``fmt``; ``width``, ``color`` and ``alerts_only`` apply to the table only;
    ``terminal`` (csv only) writes control characters as escapes, for a screen rather than a file."""
    match Format(fmt):
        case Format.table:
            from analyzer.alerts.terminal import render_table

            return render_table(report, width=width, color=color, alerts_only=alerts_only)
        case Format.json:
            return render_json(report)
        case Format.jsonl:
            return render_jsonl(report)
        case Format.markdown:
            from analyzer.alerts.markdown import render_markdown

            return render_markdown(report)
        case Format.html:
            from analyzer.alerts.html import render_html

            return render_html(report)
        case Format.csv:
            from analyzer.alerts.csv_format import render_csv

            return render_csv(report, terminal=terminal)
        case Format.ocsf:
            from analyzer.alerts.ocsf import render_ocsf

            return render_ocsf(report)
