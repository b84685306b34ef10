"""The posture report as one self-contained HTML page, with the MFA coverage chart.

The alert report's styles (:data:`analyzer.alerts.html.CSS`) and its Content-Security-Policy, less
the script: this page needs none, so ``script-src`` is ``'none'`` and nothing on it can run or load
anything (``default-src 'none'``). Every value goes through :func:`~analyzer.alerts.sanitize.html_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.alerts.html import CSS, _severity, _table
from analyzer.alerts.sanitize import html_text
from analyzer.posture import view
from analyzer.posture.chart import coverage_chart
from analyzer.posture.render import (
    ACCOUNT_HEADERS,
    COVERAGE_HEADERS,
    NEEDS_HEADERS,
    PRINCIPAL_HEADERS,
    _account_rows,
    _coverage_rows,
    _needs_rows,
    _principal_rows,
)

if TYPE_CHECKING:
    from analyzer.jobs.posture import PostureResult

CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
EXTRA_CSS = ".tier{color:#555;font-size:12.5px}.problems li{color:#c62828}"


def _cells(rows: list[list[Any]], mono: frozenset[int] = frozenset(), severity: int | None = None) -> list[list[str]]:
    out = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i == severity:
                cells.append(_severity(value))
            elif i in mono:
                cells.append(f'<span class="mono">{html_text(value)}</span>')
            else:
                cells.append(html_text(value))
        out.append(cells)
    return out


def render_html(result: PostureResult) -> str:
    a = result.assessment
    console_users = sum(1 for p in a.principals if p["console_password"])
    console_mfa = sum(1 for p in a.principals if p["console_password"] and p["mfa_active"])
    roots = sum(1 for p in a.principals if p["is_root"])
    roots_mfa = sum(1 for p in a.principals if p["is_root"] and p["mfa_active"])
    cards = [
        f'<div class="card"><b>{len(a.needs):,}</b>need MFA now</div>',
        f'<div class="card"><b>{console_mfa} / {console_users}</b>console users with MFA</div>',
        f'<div class="card"><b>{roots_mfa} / {roots}</b>root users with MFA</div>',
        f'<div class="card"><b>{a.accounts_read} / {len(a.accounts)}</b>accounts read</div>',
        f'<div class="card"><b>{a.suppressed}</b>suppressed by allowlists</div>',
    ]
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        "<title>MFA posture</title>",
        f"<style>{CSS}{EXTRA_CSS}</style></head><body>",
        "<h1>MFA posture</h1>",
        *(f'<p class="meta">{html_text(line)}</p>' for line in view.headline(result)),
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    if result.problems:
        out += [
            '<h2>Problems</h2><ul class="problems">',
            *(f"<li>{html_text(p)}</li>" for p in result.problems),
            "</ul>",
        ]
    out.append("<h2>Who needs MFA now</h2>")
    if a.needs:
        out.append(
            _table(
                NEEDS_HEADERS, _cells(_needs_rows(result), mono=frozenset({2, 3}), severity=1), numeric={0}, ids={2, 3}
            )
        )
    else:
        out.append('<p class="empty">Nobody needs MFA now.</p>')
    out += ["<h2>MFA coverage over time</h2>", coverage_chart(a.coverage)]
    if a.coverage:
        out.append(_table(COVERAGE_HEADERS, _cells(_coverage_rows(result)), numeric={4, 5}))
    out += [
        "<h2>Accounts</h2>",
        _table(ACCOUNT_HEADERS, _cells(_account_rows(result), mono=frozenset({0})), numeric={2, 3}, ids={0}),
    ]
    out += [
        f"<h2>Principals ({len(a.principals):,})</h2>",
        _table(PRINCIPAL_HEADERS, _cells(_principal_rows(result), mono=frozenset({0, 1})), ids={0}),
    ]
    if result.notes:
        out += ["<h2>Notes</h2><ul>", *(f"<li>{html_text(n)}</li>" for n in result.notes), "</ul>"]
    out.append("</body></html>\n")
    return "\n".join(out)
