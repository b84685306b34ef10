"""The terminal table reads at 100-160 columns: one line per row, ARNs whole or cut in the middle,
times to the second, the window's dates, MFA coverage limited by --only, a pager only at a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_cli_detect import detect, one_alert  # noqa: F401 - one_alert is a fixture
from test_render import alert
from typer.testing import CliRunner

from analyzer.alerts import build_report, render
from analyzer.alerts.pager import page, pager_command
from analyzer.alerts.summary import SIGNIN_SCHEMA
from analyzer.alerts.terminal import listing, middle, short_principal

ROLE = "arn:aws:sts::444455556666:assumed-role/OrganizationAccountAccessRole/incident-sim"
LONG_TITLE = "Trail re-pointed or narrowed, or a log sink turned off, or something else that is long"


def many() -> Any:
    rows = [alert(principal=ROLE, title=LONG_TITLE, detection_id="logging-redirected", source_ip=f"198.51.100.{i}",
                  event_ids=[f"e-{i}"]) for i in range(8)]
    rows += [alert(detection_id="console-login-after-failures", severity="critical",
                   principal=f"arn:aws:iam::111122223333:user/{'x' * 60}{i}", event_ids=[f"f-{i}"]) for i in range(4)]
    return build_report(rows)


@pytest.mark.parametrize("width", [100, 120, 160])
def test_every_row_is_one_line_within_the_width(width: int) -> None:
    text = render(many(), "table", width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert sum(line.startswith(("high ", "critical ")) for line in lines) == 2 + 12  # by detection + alerts
    assert not any(line.strip().startswith(("ccessRole", "narrowed", "sink")) for line in lines)  # no wrapped rest


def test_a_long_arn_keeps_its_account_and_name() -> None:
    rows = [line for line in render(many(), "table", width=100).splitlines()
            if "198.51.100.1 " in line and line.startswith("high")]
    assert len(rows) == 1 and "444455556666:…" in rows[0] and "-sim " in rows[0]  # cut in the middle
    assert "logging-redirected" in rows[0]  # the detection id whole
    assert ROLE in render(many(), "table", width=200)  # whole when it fits


def test_middle_and_short_names() -> None:
    assert short_principal(ROLE) == "444455556666:assumed-role/OrganizationAccountAccessRole/incident-sim"
    assert short_principal("arn:aws:iam::111122223333:root") == "111122223333:root"
    assert short_principal("victor") == "victor"
    cut = middle(short_principal(ROLE), 30)
    assert len(cut) == 30 and cut.startswith("444455556666:") and cut.endswith("incident-sim")
    assert middle("abcdefghij", 7) == "ab…ghij" and middle("short", 7) == "short"
    assert listing(["alpha", "beta", "gamma"], 14) == "alpha, +2" and listing(["a", "b"], 20) == "a, b"


def test_no_microseconds_in_reports_for_people() -> None:
    precise = build_report([alert(first_seen="2026-11-20T10:00:00.123456Z", last_seen="2026-11-20T10:05:00.5Z")],
                           since=datetime(2026, 11, 20, 9, 0, 0, 999999, tzinfo=UTC))
    for fmt in ("table", "markdown", "html"):
        assert ".123456" not in render(precise, fmt) and ".999999" not in render(precise, fmt), fmt
        assert ".500000" not in render(precise, fmt), fmt
    assert "2026-11-20T10:00:00.123456Z" in render(precise, "jsonl")  # machines keep the precision


def test_an_open_window_says_its_dates() -> None:
    start, end = datetime(2026, 11, 20, 0, 52, 23, tzinfo=UTC), datetime(2026, 11, 21, 15, 2, 47, tzinfo=UTC)
    opened = build_report([alert()], data_start=start, data_end=end)
    table = render(opened, "table")
    assert "2026-11-20 00:52:23 (start of data) → 2026-11-21 15:02:47 (end of data)" in table
    assert "2026-11-20T00:52:23Z (start of data) to 2026-11-21T15:02:47Z (end of data)" in render(opened, "markdown")
    assert "2026-11-20 00:52:23 (start of data)" in render(opened, "html")
    bounded = build_report([alert()], since=datetime(2026, 11, 20, tzinfo=UTC), data_start=start, data_end=end)
    assert "Window: 2026-11-20 00:00:00 → 2026-11-21 15:02:47 (end of data)" in render(bounded, "table")


def test_the_cli_names_the_data_s_first_and_last_event(one_alert: Path) -> None:  # noqa: F811
    text = detect(CliRunner(), one_alert).stdout
    assert "Window: 2026-11-20 10:00:00 (start of data) → 2026-11-20 12:00:00 (end of data)" in text


def signins() -> pl.DataFrame:
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    rows = [(at, "success", "arn:aws:iam::111122223333:user/alice", "without_mfa"),
            (at, "success", "arn:aws:iam::111122223333:user/bob", "with_mfa")]
    return pl.DataFrame(rows, schema=SIGNIN_SCHEMA, orient="row")


def test_coverage_of_the_alerts_principals_only_when_asked() -> None:
    everyone = build_report([alert()], signins=signins())
    alerted = build_report([alert()], signins=signins(), coverage_scope="alerted")
    assert everyone.summary.mfa_coverage is not None and everyone.summary.mfa_coverage.height == 2
    assert alerted.summary.mfa_coverage is not None
    assert alerted.summary.mfa_coverage["principal"].to_list() == ["arn:aws:iam::111122223333:user/alice"]
    assert "MFA coverage of the alerts' principals" in render(alerted, "table")


def test_only_limits_the_mfa_coverage_table(one_alert: Path) -> None:  # noqa: F811
    runner = CliRunner()
    full = detect(runner, one_alert)
    only = detect(runner, one_alert, "--only", "console-login-without-mfa")
    assert "user/alice" in full.stdout and "bob@example.com" in full.stdout
    assert "user/mallory" in only.stdout and "user/alice" not in only.stdout and "bob@" not in only.stdout
    quiet = detect(runner, one_alert, "--only", "cloudtrail-tampering")  # no alert: no principal to cover
    assert "No successful sign-ins by the alerts' principals" in quiet.stdout


# --- the pager ------------------------------------------------------------------------------------


def test_pager_command_follows_pager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGER", "cat")
    assert pager_command() is None
    monkeypatch.setenv("PAGER", "")
    assert pager_command() is None
    monkeypatch.setenv("PAGER", "most -s")
    assert pager_command() == "most -s"


def test_page_hands_the_text_to_the_pager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "paged.txt"
    monkeypatch.setenv("PAGER", f"cat > {target}")
    assert page("line 1\nline 2\n") and target.read_text() == "line 1\nline 2\n"
    monkeypatch.setenv("PAGER", "no-such-pager-anywhere")
    assert not page("x\n")


def test_no_pager_when_piped(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    target = tmp_path / "paged.txt"
    env = {**os.environ, "PAGER": f"cat > {target}"}
    result = subprocess.run([sys.executable, "-m", "analyzer", "detect", "--data", str(one_alert)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 3 and "Alerts (1)" in result.stdout and not target.exists()


def _run_in_terminal(args: list[str], env: dict[str, str], rows: int, cols: int = 120) -> str:
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    process = subprocess.Popen(args, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    return output.decode(errors="replace")


def test_a_long_table_at_a_terminal_goes_through_the_pager(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    target = tmp_path / "paged.txt"
    env = {**os.environ, "PAGER": f"cat > {target}", "TERM": "xterm", "NO_COLOR": "1"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    args = [sys.executable, "-m", "analyzer", "detect", "--data", str(one_alert)]
    screen = _run_in_terminal(args, env, rows=10)
    assert target.exists() and "Alerts (1)" in target.read_text() and "Alerts (1)" not in screen
    target.unlink()
    screen = _run_in_terminal(args, env, rows=200)  # it fits: no pager
    assert not target.exists() and "Alerts (1)" in screen
