"""The posture report in every format: pure functions from a :class:`~analyzer.jobs.posture.PostureResult` to text.

``table`` (a terminal), ``markdown`` (a ticket), ``html`` (one self-contained page with the coverage
chart: :mod:`analyzer.posture.html`), ``json`` (everything, for programs) and ``jsonl`` (the findings
in the alert shape, one per line with its fingerprint, exactly like ``detect --format jsonl``: a SIEM
takes both). The same escaping as the alert reports (:mod:`analyzer.alerts.sanitize`): user names
and ARNs come from IAM, where anyone allowed to create a user chose them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from analyzer.posture import view
from analyzer.posture.formats import PostureFormat

if TYPE_CHECKING:
    from analyzer.jobs.posture import PostureResult

#: Rows of the principal table a terminal or a ticket lists (json and html list all).
PRINCIPAL_ROWS = 200
#: Snapshots the coverage table lists (the newest; the chart shows every day).
COVERAGE_ROWS = 14


def render(
    result: PostureResult, fmt: PostureFormat | str = PostureFormat.table, *, width: int = 120, color: bool = False
) -> str:
    match PostureFormat(fmt):
        case PostureFormat.table:
            return render_table(result, width=width, color=color)
        case PostureFormat.json:
            return render_json(result)
        case PostureFormat.jsonl:
            return render_jsonl(result)
        case PostureFormat.markdown:
            return render_markdown(result)
        case PostureFormat.html:
            from analyzer.posture.html import render_html

            return render_html(result)


def render_jsonl(result: PostureResult) -> str:
    """The findings, one JSON object per line: ``fingerprint`` then the alert shape."""
    from analyzer.alerts.records import alert_json_lines

    return "".join(line + "\n" for line in alert_json_lines(result.assessment.findings, fingerprint=True))


def _plain(row: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in drop}


def render_json(result: PostureResult) -> str:
    """One document: the snapshot, the accounts, who needs MFA now, every principal, coverage over
    time and the findings (each with its fingerprint, as in jsonl)."""
    from datetime import UTC, datetime

    from analyzer.alerts.records import alert_json_lines, dumps, iso

    a = result.assessment
    document = {
        "generated_at": iso(datetime.now(UTC)),
        "snapshot": {
            "id": a.snapshot_id,
            "taken_at": iso(a.taken_at),
            "stored": str(result.stored) if result.stored else None,
            "offline": result.offline,
        },
        "window": {"since": iso(a.since)},
        "signins": {
            "console_signins": result.extent.signins,
            "first": iso(result.extent.first),
            "last": iso(result.extent.last),
            "dataset": result.extent.dataset,
        },
        "summary": {
            "accounts": len(a.accounts),
            "accounts_read": a.accounts_read,
            "needs_mfa": len(a.needs),
            "findings": a.findings.height,
            "suppressed": a.suppressed,
        },
        "problems": result.problems,
        "notes": result.notes,
        "accounts": a.accounts,
        "needs_mfa": a.needs,
        "principals": [_plain(p, ("key", "recent")) for p in a.principals],
        "coverage": a.coverage,
        "findings": [],
    }
    head = dumps(document, indent=True)
    lines = alert_json_lines(a.findings, fingerprint=True)
    if not lines:
        return head + "\n"
    assert head.endswith('  "findings": []\n}')
    findings = ",\n".join(f"    {line}" for line in lines)
    return head.removesuffix("[]\n}") + f"[\n{findings}\n  ]\n}}\n"


def _needs_rows(result: PostureResult) -> list[list[Any]]:
    return [
        [n["rank"], n["severity"], view.account(n), view.who(n), "; ".join(n["why"]), n["action"]]
        for n in result.assessment.needs
    ]


def _principal_rows(result: PostureResult, limit: int | None = None) -> list[list[Any]]:
    rows = result.assessment.principals[:limit] if limit else result.assessment.principals
    return [
        [
            p["account_id"],
            view.who(p),
            view.console(p),
            view.mfa(p),
            view.day(p["last_signin_iam"]),
            view.day(p["last_signin_logs"], "none"),
            view.without_mfa(p),
            view.keys(p),
        ]
        for p in rows
    ]


PRINCIPAL_HEADERS = [
    "account",
    "principal",
    "console password",
    "MFA",
    "last sign-in (IAM)",
    "last sign-in (logs)",
    "without MFA (window)",
    "access keys",
]
NEEDS_HEADERS = ["#", "severity", "account", "principal", "why", "what to do"]
ACCOUNT_HEADERS = ["account", "status", "users", "console users", "root MFA", "root keys", "password policy"]
COVERAGE_HEADERS = [
    "snapshot (UTC)",
    "accounts read",
    "console users with MFA",
    "root users with MFA",
    "needed MFA",
    "coverage",
]


def _account_rows(result: PostureResult) -> list[list[Any]]:
    out = []
    for a in result.assessment.accounts:
        ok = a["status"] == "ok"
        root_mfa = a["root_mfa_enabled"]
        out.append(
            [
                view.account(a),
                view.status(a),
                a["users"] if ok else "",
                a["console_users"] if ok else "",
                ("yes" if root_mfa else "no" if root_mfa is not None else "?") if ok else "",
                ("present" if a["root_access_keys_present"] else "none") if ok else "",
                view.policy(a["password_policy"]) if ok else (a["error"] or ""),
            ]
        )
    return out


def _coverage_rows(result: PostureResult) -> list[list[Any]]:
    return [
        [
            view.minute(c["taken_at"]),
            f"{c['accounts']} of {c['accounts_tried']}",
            f"{c['console_users_with_mfa']} of {c['console_users']}",
            f"{c['roots_with_mfa']} of {c['roots']}",
            c["needs_mfa"],
            f"{c['coverage']:.1f}%" if c["coverage"] is not None else "",
        ]
        for c in view.tail(result.assessment.coverage, COVERAGE_ROWS)
    ]


def render_table(result: PostureResult, *, width: int = 120, color: bool = False) -> str:
    """For a terminal: who needs MFA now first, then the accounts, the principals and the coverage."""
    from rich.console import Console
    from rich.text import Text

    from analyzer.alerts.terminal import SEVERITY_STYLE, _table

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    lines = view.headline(result)
    console.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        console.print(Text(line))
    console.print()
    needs = result.assessment.needs
    if needs:
        rows = [[row[0], Text(row[1], style=SEVERITY_STYLE.get(row[1], "")), *row[2:]] for row in _needs_rows(result)]
        console.print(
            _table(
                f"Who needs MFA now ({len(needs)})",
                width,
                NEEDS_HEADERS,
                rows,
                numeric={0},
                flex={2: "end", 3: "end", 4: "end", 5: "end"},
                first=[3],
            )
        )
    else:
        console.print(Text("Nobody needs MFA now.", style="bold green"))
    console.print()
    console.print(
        _table(
            "Accounts",
            width,
            ACCOUNT_HEADERS,
            _account_rows(result),
            numeric={2, 3},
            flex={0: "end", 6: "end"},
            first=[0],
        )
    )
    console.print()
    principals = result.assessment.principals
    console.print(
        _table(
            f"Principals ({len(principals)})",
            width,
            PRINCIPAL_HEADERS,
            _principal_rows(result, PRINCIPAL_ROWS),
            flex={1: "end", 3: "end", 7: "end"},
            first=[1],
        )
    )
    if len(principals) > PRINCIPAL_ROWS:
        console.print(Text(f"... and {len(principals) - PRINCIPAL_ROWS} more: the json and html reports list all"))
    if result.assessment.coverage:
        console.print()
        console.print(_table("MFA coverage over time", width, COVERAGE_HEADERS, _coverage_rows(result), numeric={4, 5}))
    return buffer.getvalue()


def render_markdown(result: PostureResult) -> str:
    """For a ticket or a wiki: the same sections as the table, every value escaped for Markdown."""
    from analyzer.alerts.markdown import _table

    lines = ["# MFA posture", ""]
    from analyzer.alerts.sanitize import markdown

    lines += [f"{markdown(line)}  " for line in view.headline(result)] + [""]
    lines += ["## Who needs MFA now", ""]
    if result.assessment.needs:
        lines += _table(NEEDS_HEADERS, _needs_rows(result), numeric={0})
    else:
        lines += ["Nobody needs MFA now.", ""]
    lines += ["## Accounts", "", *_table(ACCOUNT_HEADERS, _account_rows(result), numeric={2, 3})]
    principals = result.assessment.principals
    lines += [f"## Principals ({len(principals)})", ""]
    lines += _table(PRINCIPAL_HEADERS, _principal_rows(result, PRINCIPAL_ROWS))
    if len(principals) > PRINCIPAL_ROWS:
        lines += [f"... and {len(principals) - PRINCIPAL_ROWS} more: the json and html reports list all.", ""]
    if result.assessment.coverage:
        lines += ["## MFA coverage over time", "", *_table(COVERAGE_HEADERS, _coverage_rows(result), numeric={4, 5})]
    if result.problems:
        lines += ["## Problems", ""] + [f"- {markdown(p)}" for p in result.problems] + [""]
    return "\n".join(lines)
