"""The HTML report: grouped by detection, key columns, evidence on demand, filter and sort under a CSP
that allows only its own script; checked as text here and in real headless Chromium below."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_render import alert
from typer.testing import CliRunner

from analyzer.alerts import build_report, render
from analyzer.alerts.html import GROUP_ROWS
from analyzer.alerts.html_script import SCRIPT
from analyzer.cli import app

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (/usr/bin/chromium): "
                                    "apt-get install -y chromium; .ci/run installs it")
HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "</details></div><b>x</b>",
           "javascript:alert(3)", "\u202eevil\u202c", "' onmouseover='alert(4)"]


def hostile_alerts() -> list[dict[str, Any]]:
    return [alert(principal=v, user_name=v, user_agent=v, source_ip=v, account_id=v, region=v, title=v,
                  detection_id=f"d{i}", details=f'{{"note": {v!r}}}'.replace("'", '"') if '"' not in v else None,
                  event_ids=[v]) for i, v in enumerate(HOSTILE)]


class Elements(HTMLParser):
    """Every start tag with its attributes (what a browser would build)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


def many(n: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, 20, tzinfo=UTC)
    kinds = [("console-login-failures", "low"), ("console-login-without-mfa", "high"), ("root-activity", "critical"),
             ("mfa-device-added", "medium")]
    return [alert(detection_id=kinds[i % 4][0], severity=kinds[i % 4][1], source_ip=f"198.51.{i % 200}.{i % 250}",
                  principal=f"arn:aws:sts::111122223333:assumed-role/OrganizationAccountAccessRole/session-{i}",
                  first_seen=(start + timedelta(minutes=i)).isoformat(),
                  last_seen=(start + timedelta(minutes=i + 3)).isoformat(),
                  event_ids=[f"{i:08d}-0000-4000-8000-000000000000"],
                  details='{"event_name": "ConsoleLogin", "mfa_used": "No", "failure_reason": null}')
            for i in range(n)]


# --- as text -----------------------------------------------------------------------------------------


def test_the_only_script_is_the_report_s_own_allowed_by_its_hash() -> None:
    text = render(build_report([alert()]), "html")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp is not None
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp.group(1) and "default-src 'none'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1).split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)
    assert scripts == [SCRIPT]
    tags = elements(text)
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)  # no inline handler
    assert not any(attrs.get("src") or (tag == "link") for tag, attrs in tags)  # nothing loaded
    assert "https://" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")


def test_every_hostile_value_is_escaped_everywhere() -> None:
    text = render(build_report(hostile_alerts()), "html")
    tags = elements(text)
    assert [t for t, _ in tags].count("script") == 1 and "img" not in [t for t, _ in tags]
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    assert "<b>x</b>" not in text and "\u202e" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_alerts_are_grouped_by_detection_most_urgent_first() -> None:
    text = render(build_report(many(40)), "html")
    groups = re.findall(r'<details class="group" data-detection="([^"]+)"( open)?>', text)
    assert [g for g, _ in groups] == ["root-activity", "console-login-without-mfa", "mfa-device-added",
                                      "console-login-failures"]
    assert [bool(o) for _, o in groups] == [True, True, False, False]  # the urgent few open, the rest folded
    assert text.count('<details class="alert"') == 40
    first = text.index('data-detection="root-activity"')
    assert text.index('data-detection="console-login-failures"') > first


def test_rows_show_the_key_columns_and_the_evidence_on_demand() -> None:
    text = render(build_report([alert(user_agent="curl/8.5", details='{"mfa_used": "No", "x": null}')]), "html")
    row = re.search(r'<summary class="row">(.*?)</summary>', text, re.S)
    assert row is not None
    cells = re.findall(r"<span class=\"(?:when nw|id mono|nw mono|sum)\"[^>]*>(.*?)</span>", row.group(1))
    assert cells[1:4] == ["111122223333:user/alice", "203.0.113.9", "111122223333"]
    assert "curl/8.5" not in row.group(1)  # the agent is evidence, shown on demand
    evidence = text[text.index('<div class="evidence">'):]
    assert "curl/8.5" in evidence and '"mfa_used": "No"' in evidence and '"x"' not in evidence  # no empty fields
    assert 'class="nw mono"' in row.group(1)  # ids and addresses do not wrap


def test_a_huge_group_lists_its_most_urgent_alerts_and_says_so() -> None:
    rows = many(4 * (GROUP_ROWS + 10))
    text = render(build_report(rows), "html")
    assert text.count('<details class="alert"') == 4 * GROUP_ROWS
    assert text.count("… and 10 more, less urgent") == 4


def test_a_thousand_alerts_make_a_page_of_reasonable_size() -> None:
    text = render(build_report(many(1000)), "html")
    size = len(text.encode())
    assert size < 1_500_000, size  # ~1.2 KB per alert, every alert listed with its evidence
    assert text.count('<details class="alert"') == 1000


# --- in a real browser -------------------------------------------------------------------------------


def chromium(url: str, *extra: str, timeout: float = 90) -> tuple[str, list[str]]:
    """Run headless Chromium on ``url``; returns stdout and the console messages (errors, CSP reports)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory: pytest.TempPathFactory, fixtures_dataset: Path) -> Path:
    target = tmp_path_factory.mktemp("html") / "report.html"
    result = CliRunner().invoke(app, ["detect", "--data", str(fixtures_dataset), "-o", str(target)])
    assert result.exit_code == 3, result.output
    return target


@needs_chromium
def test_the_script_runs_under_the_csp_with_no_console_error(fixture_report: Path) -> None:
    dom, console = chromium(fixture_report.as_uri(), "--dump-dom")
    assert console == [], console  # a CSP violation or a script error is a console message
    assert '<body class="js">' in dom  # the script ran: the CSP allowed it
    total = len(re.findall(r'<details class="alert"', dom))
    assert total > 40 and re.search(rf'id="shown">{total}<', dom)


@needs_chromium
def test_the_filter_works_in_chromium(fixture_report: Path) -> None:
    dom, console = chromium(fixture_report.as_uri() + "#q=victor%20198.51&sev=critical,high", "--dump-dom")
    assert console == []
    visible = re.findall(r'<details class="alert" (?![^>]*hidden)[^>]*data-sev="(\w+)"', dom)
    assert visible and set(visible) <= {"critical", "high"}
    shown = re.search(r'id="shown">(\d+)<', dom)
    assert shown is not None and int(shown.group(1)) == len(visible) == 3  # victor's urgent alerts only
    for block in re.findall(r'<details class="alert" (?![^>]*hidden).*?</details>', dom, re.S):
        assert "victor" in block.lower() and "198.51" in block
    hidden_groups = re.findall(r'<details class="group" data-detection="([^"]+)"[^>]*hidden', dom)
    assert "cloudtrail-tampering" in hidden_groups  # a group with no match is hidden


@needs_chromium
def test_sorting_works_in_chromium(fixture_report: Path) -> None:
    dom, console = chromium(fixture_report.as_uri() + "#sort=t", "--dump-dom")
    assert console == []
    group = dom[dom.index('data-detection="console-login-failures"'):]
    group = group[:group.find('<details class="group"') % len(group)]
    times = [int(t) for t in re.findall(r'<details class="alert"[^>]* data-t="(\d+)"', group)]
    assert len(times) > 5 and times == sorted(times, reverse=True) and times != sorted(times)


@needs_chromium
def test_hostile_values_cause_no_console_message(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render(build_report(hostile_alerts()), "html"), encoding="utf-8")
    dom, console = chromium(page.as_uri() + "#q=alert", "--dump-dom")
    assert console == [] and '<body class="js">' in dom and "<img" not in dom


@needs_chromium
def test_a_screenshot_at_1400_px(fixture_report: Path, tmp_path: Path) -> None:
    shot = Path(os.environ.get("ANALYZER_SCREENSHOT_DIR", tmp_path)) / "report-fixtures-1400.png"
    _, console = chromium(fixture_report.as_uri(), "--hide-scrollbars", "--window-size=1400,2000",
                          f"--screenshot={shot}")
    assert console == []
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (1400, 2000)
