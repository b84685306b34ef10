"""An inline SVG chart of sign-ins, console and IAM Identity Center (with/without MFA), and failures.

Generated here rather than by a charting library so the HTML report stays one self-contained file
with no script at all: bars carry native ``<title>`` tooltips, and every label is escaped.
"""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl

from analyzer.alerts.sanitize import html_text

SERIES = (  # (column, label, colour): stacked bottom to top
    ("with_mfa", "with MFA", "#2e7d32"),
    ("federated", "federated (SSO/SAML)", "#1565c0"),
    ("unknown", "MFA unknown", "#9e9e9e"),
    ("without_mfa", "without MFA", "#c62828"),
)
FAILURE_COLOUR = "#ef6c00"
SPIKE_COLOUR = "#8e0000"

WIDTH = 960
LEFT, RIGHT = 56, 16
TOP_PANEL = (60, 206)  # y offset, height: sign-ins
BOTTOM_PANEL = (306, 110)  # y offset, height: failures
HEIGHT = 450


def nice_ceiling(value: float) -> int:
    """The smallest 1, 2 or 5 times 10^k at or above ``value`` (at least 1): a readable axis maximum."""
    if value <= 1:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exponent >= value:
            return int(step * exponent)
    return int(10 * exponent)  # pragma: no cover - the loop always returns


def _label(bucket: datetime, hourly: bool) -> str:
    return bucket.strftime("%m-%d %H:00" if hourly else "%Y-%m-%d")


def axis_scale(value: float) -> tuple[int, int]:
    """A readable count axis for a maximum of ``value``: (top, step), the step 1, 2 or 5 times 10^k,
    whole, with at most 6 intervals and a top at or above ``value`` (5 → 0 1 2 3 4 5; 14 → 0 5 10 15)."""
    target = max(value, 1)
    for exponent in range(0, 19):
        for base in (1, 2, 5):
            step = base * 10**exponent
            top = step * math.ceil(target / step)
            if top / step <= 6:
                return top, step
    return int(target), int(target)  # pragma: no cover - 10^18 sign-ins


def _axis(y0: int, height: int, top: int, step: int) -> list[str]:
    parts = []
    for value in range(0, top + 1, step):
        y = y0 + height - value / top * height
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value}</text>')
    return parts


def signin_chart(series: pl.DataFrame) -> str:
    """The SVG (text) for a frame from :func:`analyzer.alerts.summary.signin_series`."""
    if series.is_empty():
        return '<p class="empty">No console sign-ins in this window.</p>'
    rows = series.to_dicts()
    hourly = len(rows) > 1 and (rows[1]["bucket"] - rows[0]["bucket"]).total_seconds() <= 3600
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / len(rows)
    bar = max(slot * 0.8, 0.5)
    top_max, top_step = axis_scale(max(sum(r[c] for c, _, _ in SERIES) for r in rows))
    bottom_max, bottom_step = axis_scale(max(r["failures"] for r in rows))
    title = ("Sign-ins (console and IAM Identity Center) per " + ("hour" if hourly else "day")
             + ": with and without MFA, and failures")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title" class="chart">',
        f'<title id="chart-title">{html_text(title)}</title>',
        '<style>.grid{stroke:#ddd;stroke-width:1}.tick{font:11px sans-serif;fill:#555}'
        '.label{font:12px sans-serif;fill:#222}.spike{font:bold 11px sans-serif;fill:#8e0000}</style>',
    ]
    legend_x = LEFT
    drawn = [(label, colour) for column, label, colour in SERIES if any(r[column] for r in rows)]
    drawn += [("failures", FAILURE_COLOUR)] if any(r["failures"] and not r["spike"] for r in rows) else []
    drawn += [("failure spike", SPIKE_COLOUR)] if any(r["failures"] and r["spike"] for r in rows) else []
    for label, colour in drawn:  # only what the chart shows: a legend entry with no bar is noise
        parts.append(f'<rect x="{legend_x}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 16}" y="16" class="label">{html_text(label)}</text>')
        legend_x += 34 + 7 * len(label)
    y0, height = TOP_PANEL
    parts += _axis(y0, height, top_max, top_step)
    parts.append(f'<text x="{LEFT}" y="{y0 - 14}" class="label">successful sign-ins</text>')
    b0, bheight = BOTTOM_PANEL
    parts += _axis(b0, bheight, bottom_max, bottom_step)
    parts.append(f'<text x="{LEFT}" y="{b0 - 14}" class="label">failed sign-ins</text>')
    every = max(1, math.ceil(len(rows) / 10))
    for i, row in enumerate(rows):
        x = LEFT + i * slot + (slot - bar) / 2
        label = html_text(_label(row["bucket"], hourly))
        base = y0 + height
        for column, name, colour in SERIES:
            value = row[column]
            if not value:
                continue
            h = value / top_max * height
            base -= h
            parts.append(
                f'<rect x="{x:.2f}" y="{base:.2f}" width="{bar:.2f}" height="{h:.2f}" fill="{colour}">'
                f"<title>{label}: {value} {html_text(name)}</title></rect>"
            )
        failures = row["failures"]
        if failures:
            h = failures / bottom_max * bheight
            colour = SPIKE_COLOUR if row["spike"] else FAILURE_COLOUR
            parts.append(
                f'<rect x="{x:.2f}" y="{b0 + bheight - h:.2f}" width="{bar:.2f}" height="{h:.2f}" fill="{colour}">'
                f"<title>{label}: {failures} failed sign-in(s){' (spike)' if row['spike'] else ''}</title></rect>"
            )
            if row["spike"]:
                parts.append(
                    f'<text x="{x + bar / 2:.2f}" y="{b0 + bheight - h - 3:.2f}" text-anchor="middle" '
                    f'class="spike">{failures}</text>'
                )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.2f}" y="{b0 + bheight + 16}" text-anchor="middle" class="tick">{label}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)
