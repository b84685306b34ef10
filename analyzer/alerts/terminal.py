"""The ``table`` format: rich tables for a human at a terminal.

Every cell is a :class:`rich.text.Text` built from :func:`analyzer.alerts.sanitize.terminal`, so
log values can carry neither escape sequences nor rich markup (``[bold]``) to the screen.

Every row is one line, whatever the width: a long title is cut at its end; an ARN that does not
fit loses its ``arn:aws:iam::`` prefix (``444455556666:assumed-role/…/incident-sim``), then its
middle (the account and the name stay readable); a list of detections is cut to what fits plus
"+N". The full values are in the json, jsonl, csv and html formats. Times are to the second.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.alerts import sanitize
from analyzer.alerts.display import ELLIPSIS, NO_SIGNINS, middle, moment, short_principal, window_text
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import UNKNOWN, Report

#: Principals listed in the MFA coverage table (those without MFA sort first).
COVERAGE_ROWS = 20
#: Alerts listed (most urgent first): a terminal is for reading, the other formats carry them all.
ALERT_ROWS = 50
#: A flexible column (title, principal, detections) is cut to no less than this many characters,
#: unless the screen is too narrow for that; then to no less than NARROWEST (the others stay whole).
MIN_FLEX = 16
NARROWEST = 6

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def end(value: str, width: int) -> str:
    """``value`` cut at its end to ``width`` characters."""
    return value if len(value) <= width else value[: max(width - 1, 0)] + ELLIPSIS


def listing(values: Sequence[str], width: int) -> str:
    """As many of ``values`` as fit in ``width``, then ``+N`` for the rest."""
    shown: list[str] = []
    for i, value in enumerate(values):
        rest = len(values) - i - 1
        candidate = ", ".join([*shown, value]) + (f", +{rest}" if rest else "")
        if len(candidate) > width and shown:
            return ", ".join(shown) + f", +{len(values) - i}"
        shown.append(value)
    return end(", ".join(shown), width)


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return moment(value)
    return sanitize.terminal(value)


def _severity(value: str | None) -> Text:
    return Text(_text(value), style=SEVERITY_STYLE.get((value or "").lower(), ""))


def _when(first: datetime | None, last: datetime | None) -> str:
    """``11-20 09:20:00 → 09:29:30``: first seen, and the last seen when it differs (its time only when
    the same day), on one line; no year (the window line above has it)."""
    text = moment(first)[5:]
    if last is not None and last != first:
        later = moment(last)[5:]
        text += " → " + (later[6:] if later[:5] == text[:5] else later)
    return text




def _table(title: str, width: int, headers: Sequence[str], rows: Sequence[Sequence[object]], *,
           numeric: set[int] | None = None, flex: dict[int, str] | None = None, first: Sequence[int] = ()) -> Table:
    """A one-line-per-row table: ``flex`` maps a column to how it is cut when the width runs out
    (``middle``, ``end`` or ``list``); the other columns take what their values need. The columns in
    ``first`` (ids) are served first, whole if they can be; the others share what is left."""
    flex = flex or {}
    cells = [[value if isinstance(value, Text) else (value if isinstance(value, list) else _text(value))
              for value in row] for row in rows]

    def need(i: int) -> int:
        return max([len(headers[i]), *(len(_plain(r[i])) for r in cells)])

    fixed = sum(need(i) for i in range(len(headers)) if i not in flex)
    spare = width - fixed - 2 * (len(headers) - 1)  # two spaces between columns, none at the edges
    budget: dict[int, int] = {}
    order = [*first, *sorted((i for i in flex if i not in first), key=need)]
    for n, i in enumerate(order):  # an id whole if it fits; then the narrowest first, what it leaves to the next
        left = len(order) - n
        share = spare - MIN_FLEX * (left - 1) if i in first else spare // left
        floor = MIN_FLEX if spare >= MIN_FLEX * left else NARROWEST
        budget[i] = max(min(floor, need(i)), min(need(i), share))
        spare -= budget[i]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold", expand=False,
                  show_edge=False, pad_edge=False, collapse_padding=True)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in (numeric or set()) else "left", no_wrap=True,
                         overflow="ellipsis", max_width=budget.get(i), min_width=None if i in flex else need(i))
    for row in cells:
        out: list[Text] = []
        for i, value in enumerate(row):
            if isinstance(value, Text):
                out.append(value)
                continue
            how = flex.get(i)
            if how == "principal":  # the whole ARN when it fits, else without its prefix, cut in the middle
                full = _plain(value)
                text = full if len(full) <= budget[i] else middle(short_principal(full), budget[i])
            elif how == "list":
                text = listing([_text(v) for v in value], budget[i]) if isinstance(value, list) else _text(value)
            elif how is not None:
                text = (middle if how == "middle" else end)(_plain(value), budget[i])
            else:
                text = _plain(value)
            out.append(Text(text))
        table.add_row(*out)
    return table


def _plain(value: object) -> str:
    if isinstance(value, Text):
        return value.plain
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def alerts_table(alerts: pl.DataFrame, width: int = 120, limit: int = ALERT_ROWS) -> Table:
    """One line per alert, most severe first, at most ``limit`` (account, user agent, details: json/html)."""
    narrow = width < 120  # the first seen only: the last one is in the other formats
    rows = [
        [_severity(a["severity"]), a["detection_id"], a["principal"] or a["user_name"] or UNKNOWN,
         a["source_ip"], a["count"], _when(a["first_seen"], None if narrow else a["last_seen"])]
        for a in by_urgency(alerts).head(limit).iter_rows(named=True)
    ]
    more = alerts.height - limit
    title = f"Alerts ({alerts.height})" if more <= 0 else f"Alerts (the {limit} most urgent of {alerts.height})"
    seen = "first seen (UTC)" if narrow else "seen (UTC)"
    table = _table(title, width, ["severity", "detection", "principal", "source IP", "events", seen], rows,
                   numeric={4}, flex={1: "end", 2: "principal"}, first=[1])
    if more > 0:
        table.caption = f"... and {more} more: the json, jsonl, csv, markdown and html formats list them all"
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
            console.print(alerts_table(report.alerts, width))
        return buffer.getvalue()
    console.print(Text(f"Window: {window_text(report)} (UTC)", style="bold"))
    ran = len(report.detections)
    fired = sum(1 for n in report.detections.values() if n)
    severities = ", ".join(f"{r['alerts']} {r['severity']}" for r in summary.by_severity.to_dicts() if r["alerts"])
    console.print(Text(
        f"{summary.alerts} alert(s) covering {summary.events} distinct event(s)"
        + (f" ({severities})" if severities else "")
        + (f" from {fired} of {ran} detection(s)" if ran else "")
        + f"; {summary.suppressed} suppressed by allowlists"
    ))
    if summary.first_seen:
        console.print(Text(f"Activity seen {moment(summary.first_seen)} → {moment(summary.last_seen)} (UTC)"))
    if summary.alerts:
        console.print()
        console.print(_table(
            "By detection", width,
            ["severity", "detection", "title", "alerts", "events", "seen (UTC)"],
            [[_severity(r["severity"]), r["detection_id"], r["title"], r["alerts"], r["events"],
              _when(r["first_seen"], r["last_seen"])] for r in summary.by_detection.iter_rows(named=True)],
            numeric={3, 4}, flex={1: "end", 2: "end"}, first=[1],  # the id is what to look up: whole
        ))
        for title, key, frame in (
            ("Top principals", "principal", summary.top_principals),
            ("Top source IPs", "source_ip", summary.top_source_ips),
        ):
            console.print()
            console.print(_table(
                title, width, [key.replace("_", " "), "max severity", "alerts", "events", "detections"],
                [[r[key], _severity(r["severity"]), r["alerts"], r["events"], list(r["detections"])]
                 for r in frame.iter_rows(named=True)],
                numeric={2, 3}, flex={0: "principal" if key == "principal" else "middle", 4: "list"},
            ))
    if summary.mfa_coverage is not None:
        scope = "the alerts' principals" if summary.coverage_scope == "alerted" else "successful sign-ins"
        coverage = summary.mfa_coverage.head(COVERAGE_ROWS)
        console.print()
        console.print(_table(
            f"MFA coverage of {scope} (console and IAM Identity Center)", width,
            ["principal", "with MFA", "without MFA", "federated", "unknown", "total"],
            [[r["principal"], r["with_mfa"],
              Text(str(r["without_mfa"]), style="bold red" if r["without_mfa"] else ""),
              r["federated"], r["unknown"], r["total"]]
             for r in coverage.iter_rows(named=True)],
            numeric={1, 2, 3, 4, 5}, flex={0: "principal"},
        ) if coverage.height else Text(NO_SIGNINS[summary.coverage_scope]))
        if summary.mfa_coverage.height > COVERAGE_ROWS:
            console.print(Text(f"... and {summary.mfa_coverage.height - COVERAGE_ROWS} more principal(s)"))
    console.print()
    if summary.alerts:
        console.print(alerts_table(report.alerts, width))
    else:
        console.print(Text("No alerts.", style="bold green"))
    return buffer.getvalue()
