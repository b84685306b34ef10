"""`analyzer pull` end to end: options, exit codes, one-line errors, faults, kill -9 and resume."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.jobs.pull import run_pull
from analyzer.sources.s3 import S3Source

from s3_server import FaultProxy, S3Server, dataset_rows, put_trail

DAYS = [date(2024, 5, 31), date(2024, 6, 1), date(2024, 6, 2)]
ORG = "o-abcdef1234"
A, B = "111111111111", "222222222222"
WINDOW = ["--since", "2024-05-31", "--until", "2024-06-02"]


@pytest.fixture
def trail(s3: S3Server) -> dict[str, list[str]]:
    plain = put_trail(s3, "trail", accounts=[A, B], regions=["us-east-1", "eu-west-1"], days=DAYS, seed=1)
    org = put_trail(s3, "trail", accounts=[A], regions=["us-east-1"], days=DAYS, org=ORG, seed=2, create=False)
    return {**plain.files, **org.files}


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, ["pull", *args])


def one_line_error(result: Any) -> str:
    """The whole stderr of a failed run, checked to be a single line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return str(lines[0])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_help_has_examples_permissions_and_exit_codes(runner: CliRunner) -> None:
    result = run(runner, "--help")
    assert result.exit_code == 0, result.output
    for text in ("Examples", "analyzer pull s3://", "s3:ListBucket", "s3:GetObject", "--keep-raw", "Exit codes"):
        assert text in result.output


def test_pull_then_rerun_fetches_nothing(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                         tmp_path: Path) -> None:
    args = ["s3://trail", "--data", str(tmp_path), *WINDOW, "--endpoint-url", s3.endpoint_url]
    first = run(runner, *args)
    assert first.exit_code == 0, first.output
    assert f"files: {len(trail)} ingested, 0 already in the dataset" in first.stdout
    assert f"organization {ORG}" in first.stdout and "watermark: 2024-06-02T00:00:00Z" in first.stdout
    again = run(runner, *args)
    assert again.exit_code == 0, again.output
    digests = (2 * 2 + 1) * len(DAYS)  # one decoy digest per account, region and day (both trails): no events
    assert f"files: 0 ingested, {len(trail) + digests} already in the dataset" in again.stdout
    assert "watermark: kept at 2024-06-02T00:00:00Z (already there" in again.stdout
    assert "fetched 0 (0.0 MB)" in again.stdout
    assert sorted(e for e, _, _ in dataset_rows(tmp_path)) == sorted(e for ids in trail.values() for e in ids)


def test_endpoint_url_flag_overrides_the_environment(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    result = run(runner, "s3://trail", "--data", str(tmp_path), *WINDOW, "--endpoint-url", s3.endpoint_url, "-q")
    assert result.exit_code == 0, result.output


def test_the_environment_endpoint_is_honoured(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    result = run(runner, "s3://trail", "--data", str(tmp_path), *WINDOW, "--account", B, "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    assert "files: 6 ingested" in result.stdout  # 3 days of 2 files: 06-02 is listed for late deliveries


def test_defaults_come_from_the_pull_table_of_the_configuration(
        runner: CliRunner, s3: S3Server, trail: dict[str, list[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "analyzer.toml"
    config.write_text(f'[pull]\nbucket = "trail"\nendpoint_url = "{s3.endpoint_url}"\naccounts = "{B}"\n'
                      'regions = ["eu-west-1"]\nworkers = 4\n')
    monkeypatch.setenv("ANALYZER_CONFIG", str(config))
    result = run(runner, "--data", str(tmp_path / "data"), *WINDOW)
    assert result.exit_code == 0, result.output
    assert "files: 6 ingested" in result.stdout and "(1 account, 1 region, " in result.stdout


def test_missing_bucket_is_one_clear_line(runner: CliRunner, s3: S3Server, tmp_path: Path) -> None:
    result = run(runner, "s3://no-such-bucket/x", "--data", str(tmp_path), "--endpoint-url", s3.endpoint_url)
    assert one_line_error(result).startswith("error: s3://no-such-bucket/x/: no such bucket (NoSuchBucket")


def test_rejected_credentials_are_one_clear_line(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                                 tmp_path: Path) -> None:
    with FaultProxy(s3.endpoint_url, reject_credentials="InvalidAccessKeyId") as proxy:
        result = run(runner, "s3://trail", "--data", str(tmp_path), "--endpoint-url", proxy.endpoint_url)
    assert "credentials rejected (InvalidAccessKeyId" in one_line_error(result)


def test_missing_credentials_are_one_clear_line(runner: CliRunner, s3: S3Server, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    result = run(runner, "s3://trail", "--data", str(tmp_path), "--endpoint-url", s3.endpoint_url)
    assert "no usable AWS credentials" in one_line_error(result)


def test_an_unknown_profile_is_one_clear_line(runner: CliRunner, s3: S3Server, tmp_path: Path) -> None:
    result = run(runner, "s3://trail", "--data", str(tmp_path), "--profile", "nope")
    assert "AWS profile not found" in one_line_error(result)


def test_a_denied_starting_prefix_is_one_clear_line(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                                    tmp_path: Path) -> None:
    with FaultProxy(s3.endpoint_url, deny_prefixes=["AWSLogs/"]) as proxy:
        result = run(runner, "s3://trail", "--data", str(tmp_path), "--endpoint-url", proxy.endpoint_url)
    assert one_line_error(result) == (
        "error: s3://trail/AWSLogs/: access denied (needs s3:ListBucket): AccessDenied: Access Denied")


def test_an_unreachable_endpoint_fails_fast_in_one_line(runner: CliRunner, s3: S3Server, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(runner, "s3://trail", "--data", str(tmp_path), "--endpoint-url", f"http://127.0.0.1:{closed_port()}")
    assert "cannot reach S3" in one_line_error(result)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since: cannot read time 'yesterday'"),
    (["--since", "2024-06-02", "--until", "2024-06-01"], "--since: empty window: since 2024-06-02T00:00Z must be "
                                                         "before until 2024-06-01T00:00Z"),
    (["--account", "12345"], "--account: '12345': an account id is 12 digits"),
])
def test_bad_options(runner: CliRunner, s3: S3Server, tmp_path: Path, args: list[str], message: str) -> None:
    """Usage errors: one line, exit 2 (issue 17: an account id exited 1)."""
    result = run(runner, "s3://trail", "--data", str(tmp_path), "--endpoint-url", s3.endpoint_url, *args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output


def test_access_denied_on_one_prefix_exits_partial(runner: CliRunner, s3: S3Server, trail: dict[str, list[str]],
                                                   tmp_path: Path) -> None:
    with FaultProxy(s3.endpoint_url, deny_prefixes=[f"AWSLogs/{ORG}/"]) as proxy:
        result = run(runner, "s3://trail", "--data", str(tmp_path), *WINDOW, "--endpoint-url", proxy.endpoint_url)
    assert result.exit_code == 4, result.output
    assert f"error: s3://trail/AWSLogs/{ORG}/: access denied (needs s3:ListBucket)" in result.stderr
    plain = [k for k in trail if ORG not in k]
    assert f"files: {len(plain)} ingested" in result.stdout and "watermark: kept at none" in result.stdout


@pytest.mark.slow
def test_throttling_and_dropped_connections_every_event_exactly_once(
        runner: CliRunner, s3: S3Server, trail: dict[str, list[str]], tmp_path: Path) -> None:
    with FaultProxy(s3.endpoint_url, fault_every=5, max_faults=60) as proxy:
        result = run(runner, "s3://trail", "--data", str(tmp_path), *WINDOW, "--endpoint-url", proxy.endpoint_url,
                     "--workers", "4")
    assert set(proxy.faults) == {"slowdown", "drop", "truncate"}, proxy.faults
    assert result.exit_code == 0, result.output
    rows = dataset_rows(tmp_path)
    assert sorted(e for e, _, _ in rows) == sorted(e for ids in trail.values() for e in ids)


def ingested_count(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data}/_analyzer/manifest.sqlite?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("select count(*) from objects where status='ingested'").fetchone()[0])
    except sqlite3.Error:
        return 0


def descendants(pid: int) -> list[int]:
    """The pids of a process's children, grandchildren…, read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(runner: CliRunner, s3: S3Server,
                                                                tmp_path: Path) -> None:
    # 20 objects of ~1.4 MB make 4 pipeline batches (~6 MB each); with two worker processes the
    # first commit comes after the third batch is fetched, so a kill right after it lands mid-run.
    files = put_trail(s3, "big", accounts=[A], regions=["us-east-1", "eu-west-1"], days=DAYS[:2], files_per_day=5,
                      events_per_file=10, pad=260_000, decoys=False).files
    reference = tmp_path / "reference"
    source = S3Source(s3.client(), "s3://big")
    assert run_pull(source, reference, since=datetime(2024, 5, 31, tzinfo=UTC), until=datetime(2024, 6, 2, tzinfo=UTC),
                fetch_threads=2).exit_code == 0
    resumed = tmp_path / "resumed"
    args = ["s3://big", "--data", str(resumed), *WINDOW, "--quiet", "--workers", "2"]
    with FaultProxy(s3.endpoint_url, delay=0.15) as proxy:  # slow downloads: the kill has time to land
        killed = subprocess.Popen([sys.executable, "-m", "analyzer", "pull", *args, "--endpoint-url",
                                   proxy.endpoint_url], env=dict(os.environ))
        deadline = time.monotonic() + 90
        while ingested_count(resumed) == 0 and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = descendants(killed.pid)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        for pid in workers:  # its worker processes outlive it (they hold their own queue's pipe): end them
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    done_before = ingested_count(resumed)
    assert 0 < done_before < len(files), f"the kill did not land mid-run ({done_before} of {len(files)} done)"
    rerun = run(runner, *args, "--endpoint-url", s3.endpoint_url)
    assert rerun.exit_code == 0, rerun.output
    rows = dataset_rows(resumed)
    assert rows == dataset_rows(reference)
    assert len(rows) == len(set(rows)) == sum(len(ids) for ids in files.values())
    assert ingested_count(resumed) == len(files)
