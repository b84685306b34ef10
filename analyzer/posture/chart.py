"""An inline SVG chart of MFA coverage over time: console users and root users with MFA, in percent,
and how many principals needed MFA, one point per day (the day's last snapshot).

Like :mod:`analyzer.alerts.chart`: no script, native ``<title>`` tooltips, every label escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from analyzer.alerts.chart import axis_scale
from analyzer.alerts.sanitize import html_text

WIDTH, HEIGHT = 960, 360
LEFT, RIGHT = 56, 56
TOP, PLOT = 44, 240  # the plot's y offset and height
SERIES = (  # (key, label, colour): percentages on the left axis
    ("console_pct", "console users with MFA", "#2e7d32"),
    ("root_pct", "root users with MFA", "#1565c0"),
)
NEEDS_COLOUR = "#c62828"


def daily(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last snapshot of each day, oldest first, with its percentages."""
    by_day: dict[str, dict[str, Any]] = {}
    for point in points:
        taken = point["taken_at"]
        if isinstance(taken, datetime):
            by_day[f"{taken:%Y-%m-%d}"] = point
    out = []
    for day, point in sorted(by_day.items()):
        console, roots = point["console_users"], point["roots"]
        out.append(
            {
                "day": day,
                "needs_mfa": int(point["needs_mfa"] or 0),
                "accounts": int(point["accounts"] or 0),
                "console_pct": 100.0 * point["console_users_with_mfa"] / console if console else None,
                "root_pct": 100.0 * point["roots_with_mfa"] / roots if roots else None,
            }
        )
    return out


def coverage_chart(points: Sequence[dict[str, Any]]) -> str:
    """The SVG (text) for :func:`analyzer.posture.assess.coverage`'s points."""
    days = daily(points)
    if not days:
        return '<p class="empty">No posture snapshot stored yet.</p>'
    slot = (WIDTH - LEFT - RIGHT) / len(days)
    top_needs, step_needs = axis_scale(max(d["needs_mfa"] for d in days))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-labelledby="coverage-title" class="chart">',
        '<title id="coverage-title">MFA coverage per day: console users and root users with MFA (percent), '
        "and principals that needed MFA</title>",
        "<style>.grid{stroke:#ddd;stroke-width:1}.tick{font:11px sans-serif;fill:#555}"
        ".label{font:12px sans-serif;fill:#222}</style>",
    ]
    legend_x = LEFT
    for label, colour in [*((label, colour) for _, label, colour in SERIES), ("needed MFA", NEEDS_COLOUR)]:
        parts.append(f'<rect x="{legend_x}" y="8" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 16}" y="18" class="label">{html_text(label)}</text>')
        legend_x += 34 + 7 * len(label)
    for pct in range(0, 101, 20):  # the percent axis, left
        y = TOP + PLOT - pct / 100 * PLOT
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{pct}%</text>')
    for value in range(0, top_needs + 1, step_needs):  # the count axis, right
        y = TOP + PLOT - value / top_needs * PLOT
        parts.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" class="tick">{value}</text>')
    bar = max(min(slot * 0.5, 24), 1)
    for i, d in enumerate(days):  # bars first: the lines are drawn over them
        if d["needs_mfa"]:
            h = d["needs_mfa"] / top_needs * PLOT
            x = LEFT + i * slot + (slot - bar) / 2
            parts.append(
                f'<rect x="{x:.2f}" y="{TOP + PLOT - h:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                f'fill="{NEEDS_COLOUR}" opacity="0.35"><title>{html_text(d["day"])}: {d["needs_mfa"]} '
                f"needed MFA ({d['accounts']} account(s) read)</title></rect>"
            )
    for key, label, colour in SERIES:
        points_xy = [
            (LEFT + i * slot + slot / 2, TOP + PLOT - d[key] / 100 * PLOT, d)
            for i, d in enumerate(days)
            if d[key] is not None
        ]
        if len(points_xy) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points_xy)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, d in points_xy:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{html_text(d["day"])}: '
                f"{d[key]:.0f}% {html_text(label)}</title></circle>"
            )
    every = max(1, -(-len(days) // 10))
    for i, d in enumerate(days):
        if i % every == 0:
            x = LEFT + i * slot + slot / 2
            parts.append(
                f'<text x="{x:.1f}" y="{TOP + PLOT + 18}" text-anchor="middle" class="tick">'
                f"{html_text(d['day'])}</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts)
