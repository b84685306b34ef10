"""The nightly job's issue-17 items, on a local directory source and a local webhook: reports are never
replaced, notifications name a report a reader can open, a retried delivery counts in the exit code,
``forget_alerts_after`` is what ``retention`` was, and a window without events is a warning (exit 5)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_notify import WebhookServer
from typer.testing import CliRunner

from analyzer.alerts.state import AlertState
from analyzer.cli import app
from analyzer.config import load
from analyzer.jobs.nightly import NightlySettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NIGHT_1 = "/2026/11/20/"
UNTIL_1, UNTIL_2 = "2026-11-21T00:00Z", "2026-11-22T00:00Z"
HOOK_ENV = "TEST_JOBS_NIGHTLY_WEBHOOK"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        monkeypatch.setenv(HOOK_ENV, server.url)
        yield server


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    target = tmp_path / "logs"
    for path in (FIXTURES / "AWSLogs").rglob("*.json.gz"):
        if NIGHT_1 in str(path):
            key = path.relative_to(FIXTURES)
            (target / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / key)
    return target


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "analyzer.toml"
    path.write_text(
        "[nightly]\nworkers = 1\n\n[notify.webhook]\n"
        f'url_env = "{HOOK_ENV}"\ntimeout = 0.5\nretries = 1\nbackoff = 0.01\nmax_alerts = 45\n'
        "include_alerts = true\n" + extra
    )
    return path


def nightly(runner: CliRunner, logs: Path, settings: Path, *args: str, reports: str = "reports") -> Any:
    return runner.invoke(
        app,
        [
            "nightly",
            "--source",
            str(logs),
            "--data",
            str(logs.parent / "data"),
            "--report-dir",
            reports,
            "--config",
            str(settings),
            *args,
        ],
    )


def test_notifications_name_the_report_by_absolute_path(
    runner: CliRunner, logs: Path, tmp_path: Path, hook: WebhookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # --report-dir reports: a relative folder
    result = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, "--quiet")
    assert result.exit_code == 3, result.output
    report = tmp_path / "reports" / "report-2026-11-21T0000Z.html"
    assert report.is_file()
    text = hook.delivered[0]["text"]
    assert f"report `{report}`" in text and "report `reports/" not in text


def test_notifications_link_a_configured_report_url(
    runner: CliRunner, logs: Path, tmp_path: Path, hook: WebhookServer
) -> None:
    path = config(tmp_path)
    path.write_text(
        path.read_text().replace("[nightly]\n", '[nightly]\nreport_url = "https://reports.example.com/ct/"\n')
    )
    result = nightly(runner, logs, path, "--until", UNTIL_1, "--quiet", reports=str(tmp_path / "r"))
    assert result.exit_code == 3, result.output
    assert "report `https://reports.example.com/ct/report-2026-11-21T0000Z.html`" in hook.delivered[0]["text"]
    flag = nightly(
        runner,
        logs,
        path,
        "--until",
        UNTIL_2,
        "--quiet",
        "--report-url",
        "https://other.example/x",
        reports=str(tmp_path / "r"),
    )
    assert flag.exit_code == 5, flag.output  # the data ends on the 20th: the 21st's window holds no events


def test_a_rerun_never_replaces_a_report(runner: CliRunner, logs: Path, tmp_path: Path, hook: WebhookServer) -> None:
    first = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, "--quiet", reports=str(tmp_path / "r"))
    assert first.exit_code == 3, first.output
    kept = (tmp_path / "r" / "report-2026-11-21T0000Z.md").read_text()
    again = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, reports=str(tmp_path / "r"))
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "report-2026-11-21T0000Z-2.html",
        "report-2026-11-21T0000Z-2.md",
        "report-2026-11-21T0000Z.html",
        "report-2026-11-21T0000Z.md",
    ]
    assert (tmp_path / "r" / "report-2026-11-21T0000Z.md").read_text() == kept
    assert f"report: {tmp_path / 'r' / 'report-2026-11-21T0000Z-2.html'}" in again.stdout


def test_the_retry_after_a_failed_webhook_delivers_and_exits_3(
    runner: CliRunner, logs: Path, tmp_path: Path, hook: WebhookServer
) -> None:
    """After a run whose webhook failed, the next run delivered 24 high alerts and exited 0."""
    hook.script = [500, 500]
    failed = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, "--quiet", reports=str(tmp_path / "r"))
    assert failed.exit_code == 4, failed.output
    with AlertState(logs.parent / "data") as state:
        kept = len(state.pending(f"webhook:{HOOK_ENV}"))
    assert kept > 0 and hook.delivered == []
    retry = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, reports=str(tmp_path / "r"))
    assert retry.exit_code == 3, retry.output  # nothing new, but high alerts went out now
    assert len(hook.alerts()) == kept
    assert f"{kept:,} announced by an earlier run that could not deliver them" in retry.stdout
    assert "(0 new," in retry.stdout


def test_a_window_without_events_is_a_warning_and_exit_5(
    runner: CliRunner, logs: Path, tmp_path: Path, hook: WebhookServer
) -> None:
    first = nightly(runner, logs, config(tmp_path), "--until", UNTIL_1, "--quiet", reports=str(tmp_path / "r"))
    assert first.exit_code == 3, first.output
    later = nightly(
        runner,
        logs,
        config(tmp_path),
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-02",
        "--quiet",
        reports=str(tmp_path / "r"),
    )
    assert later.exit_code == 5, later.output
    assert (
        "warning: no events in the window 2026-12-01T00:00Z → 2026-12-02T00:00Z: the data ends 2026-11-20T"
    ) in later.stderr


def test_forget_alerts_after_is_the_name_of_what_retention_did(tmp_path: Path) -> None:
    named = tmp_path / "a.toml"
    named.write_text('[nightly]\nforget_alerts_after = "30d"\n')
    assert NightlySettings.from_settings(load(named).settings).forget_alerts_after.days == 30
    old = tmp_path / "b.toml"
    old.write_text('[nightly]\nretention = "45d"\n')
    settings = NightlySettings.from_settings(load(old).settings)
    assert settings.forget_alerts_after.days == settings.retention.days == 45
    assert NightlySettings().forget_alerts_after.days == 90
    docs = Path(__file__).resolve().parent.parent / "docs" / "config.md"
    assert "Deletes no data and no report" in docs.read_text()
