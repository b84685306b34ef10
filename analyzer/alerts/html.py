"""The ``html`` format: one self-contained page a responder reads in a minute.

Layout: the cards and the sign-in chart; then the alerts **grouped by detection**, most urgent
first (the groups of high and critical alerts open, the others folded), each alert one row of key
columns (severity, when, principal, source IP, account, summary) that opens to its evidence (every
field, the detection's details pretty-printed, the event ids); a text filter, severity checkboxes
and sortable columns; then the top principals and addresses, MFA coverage and the parameters.

Safety: every log value is escaped with ``html.escape(quote=True)`` after control characters are
removed (:func:`analyzer.alerts.sanitize.html_text`). The one inline script only shows, hides and
reorders elements; the Content-Security-Policy allows that script by its hash and nothing else (no
other script, no inline handler, no network: ``default-src 'none'``), so even a value that somehow
escaped escaping could not run or phone home. Without script the page is complete, only unfiltered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
import polars as pl

from analyzer.alerts.chart import signin_chart
from analyzer.alerts.display import NO_SIGNINS, middle, moment, short_principal, window_text
from analyzer.alerts.html_script import SCRIPT, csp_hash
from analyzer.alerts.records import details_object, fingerprints
from analyzer.alerts.sanitize import html_block, html_text
from analyzer.alerts.shape import SEVERITIES, by_urgency, rank
from analyzer.alerts.summary import CHANGE_COLUMN, UNKNOWN, Report, change_mark, distinct_events

CSP = (f"default-src 'none'; script-src {csp_hash()}; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")
#: Event ids listed in an alert's evidence (the json, jsonl and csv formats list them all).
EVENT_IDS_SHOWN = 20
#: A principal in an alert row is cut in its middle to this many characters (whole in its evidence).
PRINCIPAL_CHARS = 44
#: The summary column's text at most (about what a row shows at 1400 px; the evidence has it all).
SUMMARY_CHARS = 72
#: Alerts a detection's group lists, most urgent first (a noisy detection must not bury the page).
GROUP_ROWS = 500
#: Groups of these severities and at most OPEN_ROWS alerts start open; the others start folded, so
#: the page opens on a list of detections with the few urgent alerts shown.
OPEN_SEVERITIES = frozenset({"critical", "high"})
OPEN_ROWS = 25

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1320px;
 padding:0 1rem;color:#1d1d1f}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#555;margin:.2rem 0}.cards{display:flex;gap:.75rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:6rem}
.card b{display:block;font-size:1.4rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6;white-space:nowrap}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;padding:.05rem .4rem;border-radius:4px;white-space:nowrap;font-size:12px}
.critical{background:#8e0000;color:#fff}.high{background:#c62828;color:#fff}.medium{background:#f9a825}
.low{background:#81d4fa}.info{background:#eee}.warn{color:#c62828;font-weight:600}
.id,.nw{white-space:nowrap}.id{overflow:hidden;text-overflow:ellipsis}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
svg.chart{width:100%;height:auto;max-width:1100px}.empty{color:#555}
.change{font-weight:600;color:#1565c0;white-space:nowrap;margin-right:.3rem}
.tools{position:sticky;top:0;background:#fff;z-index:2;padding:.5rem 0;border-bottom:1px solid #ddd;
 display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
.tools input[type=search]{font:inherit;padding:.3rem .5rem;width:22rem;max-width:100%}
.tools label{white-space:nowrap}.tools button{font:inherit}
body:not(.js) .needs-js{display:none}
details.group{margin:.8rem 0;border:1px solid #ddd;border-radius:6px}
details.group>summary{padding:.45rem .7rem;cursor:pointer;background:#fafafa;border-radius:6px;list-style:none}
details.group>summary::-webkit-details-marker{display:none}
details.group>summary::before{content:"\\25B8";display:inline-block;width:1rem;color:#777}
details.group[open]>summary::before{content:"\\25BE"}
details.group[open]>summary{border-bottom:1px solid #ddd;border-radius:6px 6px 0 0}
.gt{font-weight:600}.gm{color:#555;margin-left:.5rem}
.row{display:grid;grid-template-columns:5.2rem 10.5rem minmax(12rem,2.2fr) 8.6rem 7.6rem minmax(10rem,3fr);
 gap:.6rem;align-items:start;padding:.3rem .7rem}
.head{font-weight:600;background:#f6f6f6;font-size:12.5px}
.head button{all:unset;cursor:pointer;white-space:nowrap}.head button:hover{text-decoration:underline}
.head button[aria-sort=ascending]::after{content:" \\2191"}.head button[aria-sort=descending]::after{content:" \\2193"}
details.alert{border-top:1px solid #eee}details.alert>summary{list-style:none;cursor:pointer}
details.alert>summary::-webkit-details-marker{display:none}
details.alert>summary:hover,details.alert[open]>summary{background:#f3f7fc}
.when small{display:block;color:#666}.more{padding:.4rem .7rem;color:#555;margin:0}
.sum{color:#333;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.evidence{padding:.4rem .9rem .8rem 6rem;background:#fbfbfb}
.evidence dl{display:grid;grid-template-columns:9rem 1fr;gap:.15rem .8rem;margin:.2rem 0 .5rem}
.evidence dt{color:#555}.evidence dd{margin:0;overflow-wrap:anywhere}
.evidence pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f3f3;padding:.5rem;margin:.3rem 0;
 max-height:28rem;overflow:auto}
@media (max-width:900px){.row{grid-template-columns:5rem 9rem 1fr}.row>:nth-child(n+4){display:none}
 .evidence{padding-left:.9rem}}
"""


def _value(value: object) -> str:
    if isinstance(value, datetime):
        return html_text(moment(value))
    if isinstance(value, list):
        return html_text(", ".join(str(v) for v in value))
    return html_text(value)


def _severity(value: object) -> str:
    name = str(value or "").lower()
    css = name if name in SEVERITIES else "info"
    return f'<span class="sev {css}">{html_text(value)}</span>'


def _change(value: object) -> str:
    mark = change_mark(value)
    return f'<span class="change">{mark}</span>' if mark else ""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: set[int] | None = None,
           ids: set[int] | None = None) -> str:
    """A table whose cells are already-escaped HTML fragments; ``ids`` columns do not wrap."""
    numeric, ids = numeric or set(), ids or set()

    def attrs(i: int) -> str:
        classes = [c for c, on in (("n", i in numeric), ("nw", i in ids)) if on]
        return f' class="{" ".join(classes)}"' if classes else ""

    head = "".join(f"<th{attrs(i)}>{html_text(h)}</th>" for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(f"<td{attrs(i)}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
                     for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _when(first: datetime | None, last: datetime | None) -> str:
    text = html_text(moment(first))
    if last is not None and last != first:
        later = moment(last)
        same_day = later[:10] == moment(first)[:10]
        text += f"<small>→ {html_text(later[11:] if same_day else later)}</small>"
    return text


def _preview(details: Any, limit: int = 3) -> str:
    """The first few plain values of the details, ``key: value``: what the alert is about, at a glance."""
    if not isinstance(details, dict):
        return str(details)[:80] if details else ""
    parts = []
    for key, value in details.items():
        if isinstance(value, str | int | float | bool) and value != "":
            text = str(value)
            parts.append(f"{key}: {text if len(text) <= 40 else text[:39] + '…'}")
        if len(parts) == limit:
            break
    return " · ".join(parts)


def _evidence(alert: dict[str, Any], fingerprint: str, details: Any) -> str:
    """What the row does not show: the whole principal, user name and agent, region, last seen, the
    fingerprint, the detection's details (pretty-printed, without its empty fields), the event ids."""
    ids = [str(e) for e in alert["event_ids"] or []]
    fields = [
        ("principal", alert["principal"]), ("user name", alert["user_name"]), ("user agent", alert["user_agent"]),
        ("region", alert["region"]), ("fingerprint", fingerprint),
        ("last seen (UTC)", moment(alert["last_seen"]) if alert["last_seen"] != alert["first_seen"] else None),
    ]
    listed = "".join(f"<dt>{name}</dt><dd>{html_text(value)}</dd>" for name, value in fields
                     if value not in (None, ""))
    if isinstance(details, dict):
        details = {k: v for k, v in details.items() if v is not None}
    pretty = orjson.dumps(details, option=orjson.OPT_INDENT_2).decode() if details else ""
    shown = " ".join(ids[:EVENT_IDS_SHOWN])
    hidden = len(ids) - EVENT_IDS_SHOWN
    more = f" … and {hidden} more (json, jsonl, csv list them all)" if hidden > 0 else ""
    return (f'<div class="evidence"><dl>{listed}</dl>'
            + (f'<pre class="mono">{html_block(pretty, quote=False)}</pre>' if pretty else "")
            + f'<div>event ids ({len(ids)})</div><pre class="mono">{html_block(shown + more, quote=False)}</pre></div>')


_SORTS = (("r", "severity"), ("t", "when (UTC)"), ("p", "principal"), ("ip", "source IP"), ("acct", "account"),
          ("n", "summary"))


def _group(detection: dict[str, Any], alerts: pl.DataFrame, names: dict[int, str], marked: bool) -> str:
    severity = str(detection["severity"])
    head = "".join(f'<button type="button" data-key="{key}">{label}</button>' if key != "n"
                   else '<span><button type="button" data-key="n">events</button> · summary</span>'
                   for key, label in _SORTS)
    rows = []
    for row in alerts.head(GROUP_ROWS).iter_rows(named=True):
        i = row["_i"]
        principal = row["principal"] or row["user_name"] or UNKNOWN
        first = row["first_seen"]
        epoch = int(first.timestamp()) if isinstance(first, datetime) else 0
        details = details_object(row["details"])
        summary = f"{row['count']} event(s)" + (f" · {p}" if (p := _preview(details)) else "")
        summary = summary if len(summary) <= SUMMARY_CHARS else summary[:SUMMARY_CHARS - 1] + "…"  # the rest: evidence
        mark = _change(row[CHANGE_COLUMN]) if marked else ""
        sev = str(row["severity"]).lower()
        rows.append(  # sorting reads data-r/t/n and the cells' text (data-c: the column)
            f'<details class="alert" data-i="{i}" data-sev="{html_text(sev)}" data-r="{row["_rank"]}" data-t="{epoch}" '
            f'data-n="{row["count"] or 0}"><summary class="row"><span>{mark}{_severity(row["severity"])}</span>'
            f'<span class="when nw">{_when(row["first_seen"], row["last_seen"])}</span>'
            f'<span class="id mono" data-c="p">{html_text(middle(short_principal(str(principal)), PRINCIPAL_CHARS))}'
            f'</span><span class="nw mono" data-c="ip">{html_text(row["source_ip"])}</span>'
            f'<span class="nw mono" data-c="acct">{html_text(row["account_id"])}</span>'
            f'<span class="sum">{html_text(summary)}</span></summary>'
            f'{_evidence(row, names[i], details)}</details>'
        )
    opened = " open" if severity in OPEN_SEVERITIES and alerts.height <= OPEN_ROWS else ""
    return (
        f'<details class="group" data-detection="{html_text(detection["detection_id"])}"{opened}>'
        f'<summary>{_severity(severity)} <span class="gt mono">{html_text(detection["detection_id"])}</span> '
        f'<span class="gt">{html_text(detection["title"])}</span>'
        f'<span class="gm"><span class="count">{len(rows)}</span> of {alerts.height:,} alert(s) · '
        f'{detection["events"]:,} distinct event(s) · {_when_text(detection["first_seen"], detection["last_seen"])}'
        f"</span></summary>"
        f'<div class="row head">{head}</div><div class="rows">\n' + "\n".join(rows) + "\n</div>"
        + (f'<p class="more">… and {alerts.height - GROUP_ROWS} more, less urgent: the json, jsonl and csv reports '
           "list them all.</p>" if alerts.height > GROUP_ROWS else "")
        + "</details>"
    )


def _when_text(first: datetime | None, last: datetime | None) -> str:
    return html_text(moment(first) + (f" → {moment(last)}" if last is not None and last != first else ""))


def _groups(report: Report) -> tuple[str, int]:
    """The groups (HTML) and how many alerts they list."""
    alerts = by_urgency(report.alerts)
    names = dict(enumerate(fingerprints(alerts)))
    alerts = alerts.with_row_index("_i").with_columns(rank().alias("_rank"))
    if CHANGE_COLUMN not in alerts.columns:
        alerts = alerts.with_columns(pl.lit(None, pl.String).alias(CHANGE_COLUMN))
    detections = (
        alerts.group_by("detection_id")
        .agg(pl.col("_rank").max(), pl.col("title").first(), pl.len().alias("alerts"), pl.col("first_seen").min(),
             pl.col("last_seen").max())
        .join(distinct_events(alerts, ["detection_id"]), on="detection_id", how="left")
        .sort(["_rank", "alerts", "detection_id"], descending=[True, True, False])
        .with_columns(pl.col("_rank").replace_strict(dict(enumerate(SEVERITIES)), default="info",
                                                     return_dtype=pl.String).alias("severity"))
    )
    marked = report.changes is not None
    parts = [_group(d, alerts.filter(pl.col("detection_id") == d["detection_id"]), names, marked)
             for d in detections.iter_rows(named=True)]
    listed = sum(min(n, GROUP_ROWS) for n in detections["alerts"].to_list())
    return "\n".join(parts), listed


def _tools(report: Report, listed: int) -> str:
    counts = dict(report.alerts.group_by("severity").len().iter_rows()) if report.alerts.height else {}
    boxes = "".join(
        f'<label><input type="checkbox" data-sev="{s}" checked> {_severity(s)} {counts.get(s, 0)}</label>'
        for s in reversed(SEVERITIES) if counts.get(s, 0)
    )
    return (
        '<div class="tools needs-js"><input type="search" id="q" placeholder="Filter: principal, IP, account, '
        'detection, any evidence…" aria-label="filter alerts">'
        f'{boxes}<span><b id="shown">{listed}</b> of {report.alerts.height:,} shown</span>'
        '<button type="button" id="expand">expand all</button><button type="button" id="collapse">fold all</button>'
        "</div>"
    )


def render_html(report: Report) -> str:
    """The report as one HTML document (text)."""
    summary = report.summary
    ran = len(report.detections)
    fired = sum(1 for n in report.detections.values() if n)
    cards = [
        f'<div class="card"><b>{summary.alerts:,}</b>alerts</div>',
        f'<div class="card"><b>{summary.events:,}</b>distinct events</div>',
        *(
            f'<div class="card"><b>{r["alerts"]:,}</b>{_severity(r["severity"])}</div>'
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
        f'<p class="meta">Window (UTC): {html_text(window_text(report, "to"))}'
        + (f" · generated {_value(report.generated_at)}" if report.generated_at else "")
        + (f" · activity {_value(summary.first_seen)} to {_value(summary.last_seen)}" if summary.first_seen else "")
        + "</p>",
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    if summary.signins is not None:
        out += ["<h2>Sign-ins (console and IAM Identity Center)</h2>", signin_chart(summary.signins)]
    out.append("<h2>Alerts by detection</h2>")
    if summary.alerts:
        groups, listed = _groups(report)
        out += [_tools(report, listed), groups]
    else:
        out.append('<p class="empty">No alerts.</p>')
    if summary.alerts:
        for title, key, frame in (
            ("Top principals", "principal", summary.top_principals),
            ("Top source IPs", "source_ip", summary.top_source_ips),
        ):
            out += [f"<h2>{title}</h2>", _table(
                [key.replace("_", " "), "max severity", "alerts", "distinct events", "detections"],
                ([f'<span class="mono">{_value(r[key])}</span>', _severity(r["severity"]), _value(r["alerts"]),
                  _value(r["events"]), _value(r["detections"])] for r in frame.iter_rows(named=True)),
                numeric={2, 3}, ids={0},
            )]
    if summary.mfa_coverage is not None:
        scope = "the alerts' principals" if summary.coverage_scope == "alerted" else "successful sign-ins"
        out.append(f"<h2>MFA coverage of {scope} (console and IAM Identity Center)</h2>")
        coverage = summary.mfa_coverage
        out.append(_table(
            ["principal", "with MFA", "without MFA", "federated", "unknown", "total"],
            ([f'<span class="mono">{_value(r["principal"])}</span>', _value(r["with_mfa"]),
              f'<span class="warn">{r["without_mfa"]}</span>' if r["without_mfa"] else "0",
              _value(r["federated"]), _value(r["unknown"]), _value(r["total"])]
             for r in coverage.iter_rows(named=True)),
            numeric={1, 2, 3, 4, 5}, ids={0},
        ) if coverage.height else f'<p class="empty">{NO_SIGNINS[summary.coverage_scope]}</p>')
    if report.params:
        out += ["<h2>Parameters in force</h2>",
                f"<details><summary>show</summary><pre>{html_block(json.dumps(report.params, indent=2, default=str))}"
                "</pre></details>"]
    if summary.alerts:
        out.append(f'<script id="filter-sort">{SCRIPT}</script>')
    out.append("</body></html>\n")
    return "\n".join(out)
