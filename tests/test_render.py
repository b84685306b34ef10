"""Every output format, and that attacker-controlled values cannot escape their place."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from analyzer.alerts import ALERT_COLUMNS, alert_dicts, alerts_frame, build_report, render, signin_series
from analyzer.alerts.chart import axis_scale, nice_ceiling, signin_chart
from analyzer.alerts.csv_format import COLUMNS
from analyzer.alerts.records import alert_json_lines
from analyzer.alerts.sanitize import FORMULA_START, markdown, terminal
from analyzer.alerts.shape import by_urgency
from analyzer.alerts.summary import SIGNIN_SCHEMA

SCRIPT = "<script>alert(1)</script>"
ANSI = "\x1b[31mevil\x1b[0m"


def alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "detection_id": "console-login-without-mfa", "severity": "high", "title": "Console login without MFA",
        "account_id": "111122223333", "region": "us-east-1", "principal": "arn:aws:iam::111122223333:user/alice",
        "user_name": "alice", "source_ip": "203.0.113.9", "user_agent": "Mozilla/5.0",
        "first_seen": "2026-11-20T10:00:00Z", "last_seen": "2026-11-20T10:05:00Z", "count": 2,
        "event_ids": ["e-1", "e-2"], "details": '{"mfa_used": "No"}',
    }
    return base | fields


def report(*alerts: dict[str, Any], suppressed: int = 0) -> Any:
    return build_report(list(alerts), suppressed=suppressed)


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "markdown", "html", "csv", "ocsf"])
def test_every_format_renders_an_alert(fmt: str) -> None:
    assert "203.0.113.9" in render(report(alert()), fmt)


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "html"])
def test_every_format_states_suppressed_count(fmt: str) -> None:
    text = render(report(alert(), suppressed=7), fmt)
    assert "7 suppressed" in text or '"suppressed": 7' in text or "<b>7</b>suppressed" in text


def test_jsonl_lines_carry_the_fingerprint_then_exactly_the_alert_shape() -> None:
    lines = render(report(alert(), alert(severity="critical")), "jsonl").splitlines()
    assert [list(json.loads(line)) for line in lines] == [["fingerprint", *ALERT_COLUMNS]] * 2


def test_jsonl_and_json_fingerprints_are_the_ones_the_alert_state_gives(tmp_path: Any) -> None:
    from analyzer.alerts.state import AlertState

    alerts = [alert(), alert(principal="bob", event_ids=["e-9"]), alert(severity="critical", event_ids=[])]
    built = report(*alerts)
    lines = [json.loads(line) for line in render(built, "jsonl").splitlines()]
    document = json.loads(render(built, "json"))["alerts"]
    with AlertState(tmp_path / "data") as state:  # the nightly job's names, which SNS messages carry
        tracked = {(t.alert["severity"], t.alert["principal"]): t.fingerprint for t in state.record(built.alerts)}
    assert [a["fingerprint"] for a in lines] == [a["fingerprint"] for a in document]
    assert {(a["severity"], a["principal"]): a["fingerprint"] for a in lines} == tracked
    assert len(set(tracked.values())) == 3
    assert [{k: v for k, v in a.items() if k != "fingerprint"} for a in lines] == alert_dicts(by_urgency(built.alerts))


def test_csv_has_one_row_per_alert_and_defuses_formulas() -> None:
    import csv
    import io

    hostile = alert(user_agent="=HYPERLINK(\"http://x\")", user_name="+cmd|' /C calc'!A0", principal="@SUM(1)",
                    details='{"a": "x,y\\n"}')
    text = render(report(alert(), hostile), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and list(rows[0]) == list(COLUMNS)
    bad = next(r for r in rows if r["user_agent"].startswith("'"))
    assert (bad["user_agent"], bad["user_name"], bad["principal"]) == (
        "'=HYPERLINK(\"http://x\")", "'+cmd|' /C calc'!A0", "'@SUM(1)")
    assert all(not cell.startswith(FORMULA_START) for row in rows for cell in row.values())
    good = next(r for r in rows if r is not bad)  # ties are ordered by principal: '@SUM(1)' comes first
    assert good["event_ids"] == "e-1 e-2" and json.loads(good["details"]) == {"mfa_used": "No"}
    assert good["first_seen"] == "2026-11-20T10:00:00Z" and len(good["fingerprint"]) == 32


def test_csv_keeps_control_characters_in_a_file_and_escapes_them_for_a_terminal() -> None:
    built = report(alert(user_name=ANSI))
    assert ANSI in render(built, "csv")
    shown = render(built, "csv", terminal=True)
    assert "\x1b" not in shown and "\\x1b[31mevil" in shown


def test_jsonl_types_timestamps_lists_and_objects() -> None:
    item = json.loads(render(report(alert()), "jsonl"))
    assert (item["first_seen"], item["last_seen"]) == ("2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z")
    assert item["event_ids"] == ["e-1", "e-2"] and item["details"] == {"mfa_used": "No"} and item["count"] == 2


def test_jsonl_lists_most_severe_first() -> None:
    lines = render(report(alert(severity="low"), alert(severity="critical")), "jsonl").splitlines()
    assert [json.loads(line)["severity"] for line in lines] == ["critical", "low"]


def test_jsonl_is_empty_without_alerts() -> None:
    assert render(report(), "jsonl") == ""


def test_json_document_has_summary_and_alerts() -> None:
    document = json.loads(render(report(alert(), suppressed=3), "json"))
    assert document["summary"]["suppressed"] == 3 and document["summary"]["by_severity"]["high"] == 1
    assert document["alerts"][0]["event_ids"] == ["e-1", "e-2"]


def test_json_keeps_hostile_values_verbatim_but_escaped() -> None:
    text = render(report(alert(user_name=ANSI)), "json")
    assert "\x1b" not in text and json.loads(text)["alerts"][0]["user_name"] == ANSI


def test_html_escapes_script_user_agent() -> None:
    text = render(report(alert(user_agent=SCRIPT)), "html")
    assert SCRIPT not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_html_escapes_quotes_and_details() -> None:
    text = render(report(alert(user_name='"><img src=x onerror=alert(1)>', details='{"x": "<i>"}')), "html")
    assert "<img" not in text and "&quot;&gt;&lt;img" in text and "<i>" not in text and "&lt;i&gt;" in text


def test_html_is_self_contained_with_only_its_own_script() -> None:
    text = render(report(alert()), "html")
    assert text.lower().count("<script") == 1 and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "Content-Security-Policy" in text and " src=" not in text


def signins(*rows: tuple[datetime, str, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SIGNIN_SCHEMA, orient="row")


def test_html_has_signin_chart() -> None:
    rows = [(datetime(2026, 11, 20, 10, tzinfo=UTC), "success", "arn:alice", "without_mfa")]
    text = render(build_report([alert()], signins=signins(*rows)), "html")
    assert "<svg" in text and "without MFA" in text


def test_markdown_escapes_script_user_agent() -> None:
    text = render(report(alert(user_agent=SCRIPT)), "markdown")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_markdown_value_cannot_break_the_table() -> None:
    row = next(line for line in render(report(alert(user_agent="a|b`c\nd")), "markdown").splitlines() if "a\\|" in line)
    assert "a\\|b\\`c d" in row and row.count(" | ") == 10


def test_table_strips_ansi_from_user_name() -> None:
    text = render(report(alert(principal=None, user_name=ANSI)), "table")
    assert "\x1b" not in text and "[31m" not in text and "evil" in text


def test_table_shows_rich_markup_literally() -> None:
    text = render(report(alert(principal=None, user_name="[bold red]boss[/]")), "table", width=200)
    assert "[bold red]boss[/]" in text


def test_table_in_colour_has_only_our_escapes() -> None:
    text = render(report(alert(principal=None, user_name=ANSI)), "table", color=True)
    assert "\x1b[31mevil" not in text and "evil" in text


def test_table_says_unknown_for_hidden_principal() -> None:
    text = render(report(alert(principal=None, user_name=None)), "table")
    assert "(unknown)" in text


def test_table_alerts_only_is_empty_without_alerts() -> None:
    assert render(report(), "table", alerts_only=True) == ""


def test_table_without_alerts_says_so() -> None:
    assert "No alerts." in render(report(), "table")


def test_terminal_sanitiser_drops_controls_osc_and_bidi() -> None:
    assert terminal("a\x1b]0;pwned\x07b\x07c\u202ed\x9b2Je\nf") == "abcde f"


def test_markdown_sanitiser_escapes_metacharacters() -> None:
    assert markdown("x|y`z<a>*[l](u)\\") == "x\\|y\\`z&lt;a&gt;\\*\\[l\\](u)\\\\"


def test_chart_axis_maxima_are_round() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 11, 60, 250)] == [1, 1, 5, 10, 20, 100, 500]


@pytest.mark.parametrize(("maximum", "ticks"), [
    (5, [0, 1, 2, 3, 4, 5]), (3, [0, 1, 2, 3]), (14, [0, 5, 10, 15]), (1, [0, 1]), (0, [0, 1]),
    (250, [0, 50, 100, 150, 200, 250]), (1234, [0, 500, 1000, 1500]),
])
def test_chart_y_axis_labels_every_step(maximum: int, ticks: list[int]) -> None:
    top, step = axis_scale(maximum)
    assert list(range(0, top + 1, step)) == ticks
    rows = [(datetime(2026, 11, 20, 10, tzinfo=UTC), "success", "a", "with_mfa")] * maximum
    svg = signin_chart(signin_series(signins(*rows))) if maximum else ""
    if maximum:
        labels = [int(t) for t in re.findall(r'class="tick">(\d+)</text>', svg)]
        assert labels[:len(ticks)] == ticks  # every tick labelled, not only 0 and the top


def test_chart_legend_lists_only_what_is_drawn() -> None:
    rows = [(datetime(2026, 11, 20, 10, tzinfo=UTC), "success", "a", "with_mfa")]
    svg = signin_chart(signin_series(signins(*rows)))
    legend = re.findall(r'class="label">([^<]+)</text>', svg)
    assert "with MFA" in legend and "failures" not in legend and "without MFA" not in legend
    assert "failure spike" not in legend
    rows.append((datetime(2026, 11, 20, 11, tzinfo=UTC), "failure", None, "unknown"))
    assert ">failures<" in signin_chart(signin_series(signins(*rows)))


def test_chart_of_no_signins_says_so() -> None:
    assert "No console sign-ins" in signin_chart(signin_series(signins()))


def test_chart_marks_failure_spike_with_tooltip_and_label() -> None:
    rows = [(datetime(2026, 11, 20, h, tzinfo=UTC), "failure", None, "unknown") for h in (0, 1, *[2] * 10)]
    svg = signin_chart(signin_series(signins(*rows), every="1h"))
    assert "<title>11-20 02:00: 10 failed sign-in(s) (spike)</title>" in svg and 'class="spike">10</text>' in svg


def test_table_lists_the_most_urgent_alerts_only() -> None:
    text = render(report(*[alert(source_ip=f"10.0.0.{i}") for i in range(60)], alert(severity="critical")), "table")
    assert "the 50 most urgent of 61" in text and "11 more" in text and "critical" in text


def test_jsonl_line_equals_the_alert_dict() -> None:
    pretty = alert(user_name="é\u009b\u202e", details='{\n  "pretty": true\n}')
    alerts = alerts_frame([pretty, alert(details="not json"), alert(details=None)])
    assert [json.loads(line) for line in alert_json_lines(alerts)] == alert_dicts(alerts)


def test_jsonl_escapes_c1_and_bidi_controls() -> None:
    line = render(report(alert(user_name="a\u009b\u202eb")), "jsonl")
    assert "\\u009b\\u202e" in line and "\u009b" not in line and "\u202e" not in line


def test_reports_mark_what_is_new_only_when_told() -> None:
    marked = build_report([alert(), alert(principal="bob")], changes=["new", "seen"])
    text = render(marked, "markdown")
    assert "Since the last report: 1 new, 0 escalated, 0 grown." in text and text.count("| new |") == 1
    assert '<span class="change">new</span>' in render(marked, "html")
    assert render(marked, "jsonl") == render(report(alert(), alert(principal="bob")), "jsonl")  # the SIEM shape
    plain = render(report(alert()), "markdown")
    assert "since last report" not in plain and "Since the last report" not in plain
