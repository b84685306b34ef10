"""Commands, errors, conventions (issue 17): one-line usage errors with exit 2, --version, help without
Typer's type labels, one meaning of -f, Athena habits in `analyzer sql`, the prompt's .mode and
.maxrows, what `pull --until` ingests, Ctrl-C, and text that is never read as rich markup."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.cli.docs import commands

from s3_server import FaultProxy, S3Server, dataset_rows, put_trail

ROOT = Path(__file__).resolve().parent.parent


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args))


# -- usage errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["pull", "s3://"], "error: s3://: no bucket name"),
        (["pull", "bucket-name"], "error: bucket-name: not an s3:// URL (did you mean s3://bucket-name?)"),
        (["pull", "s3://b", "--account", "12345"], "error: --account: '12345': an account id is 12 digits"),
        (
            ["ingest", "s3://bucket/AWSLogs"],
            "error: s3://bucket/AWSLogs: ingest reads local files; to read S3: analyzer pull s3://bucket/AWSLogs",
        ),
        (["ingest", "--workers", "0", "x"], "error: --workers: must be at least 1 (analyzer ingest -h)"),
        (["ingest"], "error: missing PATH (analyzer ingest -h)"),
        (["detect", "--since", "foo"], "error: --since: cannot read time 'foo'"),
        (
            ["detect", "--since", "2026-11-21", "--until", "2026-11-20"],
            "error: --since: empty window: since 2026-11-21T00:00Z must be before until 2026-11-20T00:00Z",
        ),
        (["detect", "--format", "bogus"], "error: --format: 'bogus' is not one of table, json, jsonl"),
        (["detect", "--bogus"], "error: no such option --bogus"),
        (["detect", "-o", "report.xlsx"], "error: --output: report.xlsx: suffix '.xlsx' names no report format"),
        (["sql", "--max-rows", "x", "select 1"], "error: --max-rows: not a whole number (analyzer sql -h)"),
        (["sql", "-o", "out.xlsx", "select 1"], "error: --output: out.xlsx: suffix '.xlsx' names no output format"),
        (["nightly", "--late-margin", "5"], "error: --late-margin: '5': not a duration"),
        (["failures", "--give-up", "--older-than", "soon"], "error: --older-than: cannot read time 'soon'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ctdata" / "_analyzer").mkdir(parents=True)  # failures --give-up needs a dataset to open
    result = invoke(runner, *args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
    assert "Usage:" not in result.output and "Try '" not in result.output and "Traceback" not in result.output


def test_parquet_to_a_terminal_is_a_usage_error(tmp_path: Path) -> None:
    """At a real terminal (a pty), before the dataset is opened: exit 2, not 1."""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "analyzer", "sql", "-f", "parquet", "select 1", "--data", str(tmp_path / "none")],
            stdout=secondary,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: --format: parquet is binary: give --output FILE or redirect standard output"


def test_version(runner: CliRunner) -> None:
    for flag in ("--version", "-V"):
        result = invoke(runner, flag)
        assert result.exit_code == 0 and result.stdout == f"analyzer {version('analyzer')}\n"


# -- help -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [path for path, _, _ in commands()])
def test_help_shows_placeholders_not_type_labels(path: str) -> None:
    command = dict((p, (c, ctx)) for p, c, ctx in commands())[path]
    text = command[0].get_help(command[1])
    usage = text.splitlines()[0]
    assert "{" not in usage, usage
    labels = re.findall(r" <(?:int|float|str|path|file|list|text|bool)[^>]*>", text)
    assert not labels, f"{path}: {labels}"
    assert "x>=" not in text and "<=x" not in text
    assert not [
        line
        for line in text.splitlines()
        if line.rstrip().endswith("...")
        and "Usage" not in line
        and not line.strip().startswith(("[", "-", "PATH", "SQL"))
    ], text  # summaries are never cut


@pytest.mark.parametrize("name", ["ingest", "pull"])
def test_writer_help_says_nothing_of_fail_on(runner: CliRunner, name: str) -> None:
    text = invoke(runner, name, "--help").stdout
    assert "--fail-on" not in text and "130 interrupted" in text


def test_f_means_format_in_detect_and_sql(runner: CliRunner, fixtures_dataset: Path) -> None:
    detect = invoke(runner, "detect", "--data", str(fixtures_dataset), "-f", "jsonl", "--quiet")
    assert detect.exit_code == 3 and detect.stdout.startswith('{"fingerprint"')
    sql = invoke(runner, "sql", "--data", str(fixtures_dataset), "-f", "jsonl", "select 1 as one")
    assert sql.exit_code == 0 and sql.stdout == '{"one":1}\n'
    legacy = invoke(runner, "sql", "--data", str(fixtures_dataset), "-F", "csv", "select 1 as one")
    assert legacy.stdout == "one\n1\n"


# -- sql: Athena habits, the prompt ------------------------------------------------------------------------------


ATHENA_EXAMPLES = [  # as AWS's "Querying AWS CloudTrail logs" examples write them
    (
        "select useridentity.arn, eventname, sourceipaddress, eventtime from cloudtrail_logs where eventname = "
        "'ConsoleLogin' and eventtime >= '2026-11-20T00:00:00Z' and eventtime < '2026-11-21T00:00:00Z'"
    ),
    (
        "select useridentity.username, json_extract_scalar(responseelements, '$.ConsoleLogin') as outcome, "
        "json_extract_scalar(additionaleventdata, '$.MFAUsed') as mfa from cloudtrail_logs "
        "where eventname = 'ConsoleLogin' and from_iso8601_timestamp(eventtime) > from_iso8601_timestamp("
        "'2026-11-19T00:00:00Z')"
    ),
    (
        "select count(*) as n from cloudtrail_logs where useridentity.type = 'Root' and "
        "from_iso8601_date('2026-11-20') <= eventtime"
    ),
]


@pytest.mark.parametrize("query", ATHENA_EXAMPLES)
def test_athena_examples_run_as_written(runner: CliRunner, fixtures_dataset: Path, query: str) -> None:
    result = invoke(runner, "sql", "--data", str(fixtures_dataset), "-f", "csv", query)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) >= 2


def test_json_extract_scalar_is_prestos(fixtures_dataset: Path) -> None:
    from analyzer.sql import open_readonly, query_arrow

    con = open_readonly(fixtures_dataset)
    row = query_arrow(
        con,
        'select json_extract_scalar(\'{"a": {"b": 1}, "c": "x", "n": 2}\', \'$.a\') as obj, '
        "json_extract_scalar('{\"c\": \"x\"}', '$.c') as text, "
        "json_extract_scalar('{\"n\": 2}', 'n') as num, "
        "from_iso8601_timestamp('2026-11-20T10:00:00Z') as t",
    ).to_pylist()[0]
    assert (row["obj"], row["text"], row["num"]) == (None, "x", "2")
    assert row["t"].isoformat() == "2026-11-20T10:00:00+00:00"
    assert (
        query_arrow(con, "select count(*) as n from cloudtrail_logs").column("n")[0].as_py()
        == query_arrow(con, "select count(*) as n from events").column("n")[0].as_py()
        > 0
    )


def test_the_prompt_has_mode_and_maxrows_and_names_its_own_commands(fixtures_dataset: Path) -> None:
    from rich.console import Console

    from analyzer.cli.sql import repl
    from analyzer.sql import open_readonly

    script = iter(
        [
            ".maxrows 2",
            "select eventID from events order by 1;",
            ".mode csv",
            "select eventID from events order by 1 limit 3;",
            ".mode parquet",
            ".maxrows x",
            ".help",
            ".quit",
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    repl(
        open_readonly(fixtures_dataset),
        read=lambda prompt: next(script),
        console=Console(file=out, width=120),
        errors=Console(file=err, width=200),
    )
    text = out.getvalue()
    assert re.search(r"\d+ rows \(2 shown, \d+ not shown: \.maxrows 0 or \.mode csv for all\)", text), text
    assert "--max-rows" not in text and "--format" not in text and "--output" not in text
    assert "eventID\n" in text  # the csv header
    assert ".mode FORMAT" in text and "(now: csv)" in text and "(now: 2)" in text
    assert "error: .mode takes one of table, csv, json, jsonl (now: csv)" in err.getvalue()
    assert "error: .maxrows takes a number of rows (0: all)" in err.getvalue()


# -- rich markup --------------------------------------------------------------------------------------------------


def test_the_clis_consoles_never_read_text_as_markup_or_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    """An SNS topic ARN with ``:x:`` was printed as an emoji; ``[bold]`` in a name would vanish."""
    from analyzer.cli.app import stderr, stdout

    text = "notify sns arn:aws:sns:eu-west-1:111122223333:x:y [bold]a[/bold] :thumbs_up:"
    stdout.print(text)
    stderr.print(text)
    captured = capsys.readouterr()
    assert captured.out == captured.err == text + "\n"


# -- pull: what --until ingests --------------------------------------------------------------------------------------


def test_pull_says_what_the_late_delivery_margin_ingests(runner: CliRunner, s3: S3Server, tmp_path: Path) -> None:
    put_trail(
        s3,
        "trail",
        accounts=["111111111111"],
        regions=["us-east-1"],
        days=[date(2024, 5, 31), date(2024, 6, 1)],
        files_per_day=2,
    )
    result = invoke(
        runner,
        "pull",
        "s3://trail",
        "--data",
        str(tmp_path),
        "--since",
        "2024-05-31",
        "--until",
        "2024-06-01",
        "--endpoint-url",
        s3.endpoint_url,
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "window: 2024-05-31T00:00Z → 2024-06-01T00:00Z" in text
    assert (
        "day folders: 2024-05-31 to 2024-06-01, each listed whole" in text
        and "the files delivered on 2024-06-01 are ingested whole, events after 2024-06-01T00:00Z included" in text
    )


# -- Ctrl-C -----------------------------------------------------------------------------------------------------------


def _ingested(data: Path) -> int:
    try:
        with sqlite3.connect(f"file:{data}/_analyzer/manifest.sqlite?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("select count(*) from objects where status='ingested'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _interrupt_once_started(args: list[str], data: Path, extra_env: dict[str, str] | None = None) -> Any:
    """Run ``analyzer ARGS`` in a process group of its own and press Ctrl-C (SIGINT to the group, as a
    terminal does) once the first batch is committed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "analyzer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(extra_env or {})},
    )
    deadline = time.monotonic() + 120
    while _ingested(data) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.mark.slow
def test_ctrl_c_stops_ingest_in_one_line_and_a_rerun_resumes(runner: CliRunner, tmp_path: Path) -> None:
    from synth import write_corpus

    corpus = write_corpus(tmp_path / "corpus", 60_000, workers=1, days=3)
    data = tmp_path / "data"
    code, _, err = _interrupt_once_started(
        ["ingest", str(tmp_path / "corpus"), "--data", str(data), "--workers", "2", "--batch-mb", "0.5"], data
    )
    done = _ingested(data)
    assert 0 < done < corpus.files, f"the interrupt did not land mid-run ({done} of {corpus.files})"
    assert code == 130 and err == "interrupted; rerun to resume\n", err
    rerun = invoke(runner, "ingest", str(tmp_path / "corpus"), "--data", str(data), "--workers", "1")
    assert rerun.exit_code == 0, rerun.output
    rows = dataset_rows(data)
    assert len(rows) == len(set(rows)) == corpus.events and _ingested(data) == corpus.files


@pytest.mark.slow
def test_ctrl_c_stops_pull_without_a_worker_traceback(runner: CliRunner, s3: S3Server, tmp_path: Path) -> None:
    files = put_trail(
        s3,
        "big",
        accounts=["111111111111"],
        regions=["us-east-1", "eu-west-1"],
        days=[date(2024, 5, 31), date(2024, 6, 1)],
        files_per_day=5,
        events_per_file=10,
        pad=260_000,
        decoys=False,
    ).files
    data = tmp_path / "data"
    args = ["s3://big", "--data", str(data), "--since", "2024-05-31", "--until", "2024-06-02", "--workers", "2"]
    with FaultProxy(s3.endpoint_url, delay=0.15) as proxy:  # slow downloads: Ctrl-C lands mid-run
        code, _, err = _interrupt_once_started(["pull", *args, "--endpoint-url", proxy.endpoint_url], data)
    assert 0 < _ingested(data) < len(files)
    assert code == 130 and err == "interrupted; rerun to resume\n", err
    rerun = invoke(runner, "pull", *args, "--endpoint-url", s3.endpoint_url)
    assert rerun.exit_code == 0, rerun.output
    rows = dataset_rows(data)
    assert len(rows) == len(set(rows)) == sum(len(ids) for ids in files.values())


def test_the_progress_bar_shows_a_total_only_once_it_is_final() -> None:
    from analyzer.cli.progress import files_text
    from analyzer.ingest import IngestStats
    from analyzer.jobs.progress import Progress

    stats = IngestStats(ingested=3, unchanged=2)
    assert files_text(Progress(stats, found=551, total=None)) == "5 files done, 551 found so far"
    assert files_text(Progress(stats, found=2841, total=2841)) == "5/2,841 files"


def test_a_piped_table_has_every_column_laid_out_as_at_a_terminal(fixtures_dataset: Path) -> None:
    """Piped, the table was cut to the terminal's height and 80 columns; now every row and column, in the
    terminal's layout (but written without Rich: 200k rows took a minute)."""
    from rich.console import Console

    from analyzer.output.table import render_table
    from analyzer.sql import execute, open_readonly

    query = (
        "select eventID, eventName, eventTime, readOnly, userIdentity, 1.5 as x, null as n, "
        "'日本語' as wide from events order by eventID limit 7"
    )
    con = open_readonly(fixtures_dataset)
    piped, screen = io.StringIO(), io.StringIO()
    render_table(execute(con, query), Console(file=piped, width=80), None)
    render_table(execute(con, query), Console(file=screen, width=100_000, force_terminal=True, color_system=None), 0)
    lines = piped.getvalue().splitlines()
    assert lines[0].split() == ["eventID", "eventName", "eventTime", "readOnly", "userIdentity", "x", "n", "wide"]
    assert lines[-1] == "7 rows" and len(lines) == 10 and "…" in lines[2]  # userIdentity cut at 48 cells
    assert [line.rstrip() for line in screen.getvalue().splitlines()] == lines
