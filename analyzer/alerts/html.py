"""The ``html`` format: one self-contained page (inline CSS, inline SVG, no script, no network).

Every log value is escaped with ``html.escape(quote=True)`` (after control characters are
removed), and the page's Content-Security-Policy forbids scripts and remote loads outright, so
even a value that somehow escaped escaping could not run or phone home.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

import orjson

from analyzer.alerts.chart import signin_chart
from analyzer.alerts.records import details_object, iso
from analyzer.alerts.sanitize import html_block, html_text
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import CHANGE_COLUMN, UNKNOWN, Report, change_mark

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#222}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#555}.cards{display:flex;gap:.75rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:6rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.3rem .5rem;
 border-bottom:1px solid #eee;vertical-align:top;overflow-wrap:anywhere}th{background:#f6f6f6}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;padding:.05rem .4rem;border-radius:4px;white-space:nowrap}
.critical{background:#8e0000;color:#fff}.high{background:#c62828;color:#fff}.medium{background:#f9a825}
.low{background:#81d4fa}.info{background:#eee}.warn{color:#c62828;font-weight:600}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f8f8f8;padding:.5rem;font-size:12px}
svg.chart{width:100%;height:auto}.empty{color:#555}
.change{font-weight:600;color:#1565c0;white-space:nowrap}
"""


def _value(value: object) -> str:
    if isinstance(value, datetime):
        return html_text((iso(value) or "").replace("T", " "))
    if isinstance(value, list):
        return html_text(", ".join(str(v) for v in value))
    return html_text(value)


def _severity(value: object) -> str:
    name = str(value or "").lower()
    css = name if name in {"critical", "high", "medium", "low", "info"} else "info"
    return f'<span class="sev {css}">{html_text(value)}</span>'


def _change(value: object) -> str:
    mark = change_mark(value)
    return f'<span class="change">{mark}</span>' if mark else ""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: set[int] | None = None) -> str:
    """A table whose cells are already-escaped HTML fragments."""
    numeric = numeric or set()
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{html_text(h)}</th>' for i, h in enumerate(headers))
    body = "\n".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{cell}</td>' for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def render_html(report: Report) -> str:
    """The report as one HTML document (text)."""
    summary = report.summary
    window = f"{_value(report.since) or 'start of data'} to {_value(report.until) or 'end of data'}"
    ran = len(report.detections)
    fired = sum(1 for n in report.detections.values() if n)
    cards = [
        f'<div class="card"><b>{summary.alerts}</b>alerts</div>',
        *(
            f'<div class="card"><b>{r["alerts"]}</b>{_severity(r["severity"])}</div>'
            for r in summary.by_severity.to_dicts()
        ),
        f'<div class="card"><b>{summary.suppressed}</b>suppressed by allowlists</div>',
    ]
    if ran:
        cards.append(f'<div class="card"><b>{fired} / {ran}</b>detections fired</div>')
    changes = report.changes
    if changes is not None:
        cards.append(f'<div class="card"><b>{changes["new"]}</b>new since the last report'
                     f' ({changes["escalated"]} escalated, {changes["grew"]} grown)</div>')
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        "<title>CloudTrail detections</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>CloudTrail detections</h1>",
        f'<p class="meta">Window: {window}'
        + (f" · generated {_value(report.generated_at)}" if report.generated_at else "")
        + (f" · activity {_value(summary.first_seen)} to {_value(summary.last_seen)}" if summary.first_seen else "")
        + "</p>",
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    if summary.signins is not None:
        out += ["<h2>Console sign-ins</h2>", signin_chart(summary.signins)]
    if summary.alerts:
        out += ["<h2>By detection</h2>", _table(
            ["severity", "detection", "title", "alerts", "events", "first seen", "last seen"],
            ([_severity(r["severity"]), _value(r["detection_id"]), _value(r["title"]), _value(r["alerts"]),
              _value(r["events"]), _value(r["first_seen"]), _value(r["last_seen"])]
             for r in summary.by_detection.iter_rows(named=True)),
            numeric={3, 4},
        )]
        for title, key, frame in (
            ("Top principals", "principal", summary.top_principals),
            ("Top source IPs", "source_ip", summary.top_source_ips),
        ):
            out += [f"<h2>{title}</h2>", _table(
                [key.replace("_", " "), "max severity", "alerts", "events", "detections"],
                ([_value(r[key]), _severity(r["severity"]), _value(r["alerts"]), _value(r["events"]),
                  _value(r["detections"])] for r in frame.iter_rows(named=True)),
                numeric={2, 3},
            )]
    if summary.mfa_coverage is not None:
        out.append("<h2>MFA coverage of successful console sign-ins</h2>")
        coverage = summary.mfa_coverage
        out.append(_table(
            ["principal", "with MFA", "without MFA", "federated", "unknown", "total"],
            ([_value(r["principal"]), _value(r["with_mfa"]),
              f'<span class="warn">{r["without_mfa"]}</span>' if r["without_mfa"] else "0",
              _value(r["federated"]), _value(r["unknown"]), _value(r["total"])]
             for r in coverage.iter_rows(named=True)),
            numeric={1, 2, 3, 4, 5},
        ) if coverage.height else '<p class="empty">No successful console sign-ins in the window.</p>')
    out.append("<h2>Alerts</h2>")
    if summary.alerts:
        marked = changes is not None
        out.append(_table(
            [*(["since last report"] if marked else []), "severity", "detection", "principal", "user name",
             "source IP", "user agent", "account", "region", "events", "first seen", "last seen", "evidence"],
            ([*([_change(a[CHANGE_COLUMN])] if marked else []), _severity(a["severity"]),
              _value(a["detection_id"]), _value(a["principal"] or UNKNOWN),
              _value(a["user_name"]), _value(a["source_ip"]), _value(a["user_agent"]), _value(a["account_id"]),
              _value(a["region"]), _value(a["count"]), _value(a["first_seen"]), _value(a["last_seen"]),
              _evidence(a["event_ids"], a["details"])]
             for a in by_urgency(report.alerts).iter_rows(named=True)),
            numeric={9 if marked else 8},
        ))
    else:
        out.append('<p class="empty">No alerts.</p>')
    if report.params:
        out += ["<h2>Parameters in force</h2>",
                f"<details><summary>show</summary><pre>{html_block(json.dumps(report.params, indent=2, default=str))}"
                "</pre></details>"]
    out.append("</body></html>\n")
    return "\n".join(out)


def _evidence(event_ids: list[str] | None, details: str | None) -> str:
    evidence = {"details": details_object(details), "event_ids": list(event_ids or [])}
    text = orjson.dumps(evidence, option=orjson.OPT_INDENT_2).decode()
    return f"<details><summary>{len(event_ids or [])} event(s)</summary><pre>{html_block(text)}</pre></details>"
