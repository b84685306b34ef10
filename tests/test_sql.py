"""`analyzer sql` and :mod:`analyzer.sql`: results, formats, errors, the prompt, and read-only for real."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.cli.sql import repl
from analyzer.sources.local import walk
from analyzer.sql import (
    QueryError,
    execute_each,
    open_readonly,
    query_arrow,
    query_polars,
    run,
    statement_complete,
)

from records import log_key, record, write_log

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve events over two days, one of them delivered twice (so the duplicate index exists)."""
    logs = tmp_path_factory.mktemp("logs")
    rows = [record(i, time=f"2026-11-{20 + i % 2}T10:{i:02d}:00Z") for i in range(12)]
    rows[3]["userIdentity"]["userName"] = "eve\x1b[31mADMIN\x1b[0m"  # an attacker-chosen value
    write_log(logs, log_key(0), rows)
    write_log(logs, log_key(1, suffix="Duplicate0000001"), rows[:1])
    target = tmp_path_factory.mktemp("sql-data")
    assert ingest_objects(walk([logs]), target, workers=1).failed == 0
    with closing(sqlite3.connect(target / "_analyzer" / "manifest.sqlite")) as db:  # the duplicate index exists
        assert db.execute("select count(*) from duplicates").fetchone()[0] > 0
    return target


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root with a hash of its bytes: the dataset, byte for byte."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def sql(runner: CliRunner, data: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["sql", "--data", str(data), *args], input=input)
    return result.exit_code, result.output


# --- library -----------------------------------------------------------------------------------


def test_run_returns_arrow(data: Path) -> None:
    table = run("select count(*) as n from events", data)
    assert isinstance(table, pa.Table) and table.to_pylist() == [{"n": 12}]


def test_query_polars_returns_the_last_statement(data: Path) -> None:
    con = open_readonly(data)
    frame = query_polars(con, "create temp view x as select eventName from events; select count(*) as n from x")
    assert isinstance(frame, pl.DataFrame) and frame["n"].to_list() == [12]


def test_readonly_views_match_the_engine(data: Path) -> None:
    plain, locked = connect(data), open_readonly(data)
    for view in ("events", "events_all"):
        query = f"select * from {view} order by source_object, record_index"
        assert plain.sql(f"describe {view}").fetchall() == locked.sql(f"describe {view}").fetchall()
        assert plain.sql(query).fetchall() == locked.sql(query).fetchall()
    assert locked.sql("select count(*) from events_all").fetchall() == [(13,)]


def test_partition_filters_reach_the_files(data: Path) -> None:
    con = open_readonly(data)
    plan = str(con.sql("explain select count(*) from events where event_date = '2026-11-20'").fetchall())
    assert "event_date" in plan and "PYTHON_ARROW_SCAN" in plan.upper()


def test_query_error_carries_line_and_caret(data: Path) -> None:
    con = open_readonly(data)
    with pytest.raises(QueryError) as caught:
        query_arrow(con, "select 1;\n\nselect nosuch\nfrom events")
    message = str(caught.value)
    assert 'column "nosuch" not found' in message
    assert "LINE 3: select nosuch\n               ^^^^^^" in message


def test_execute_each_yields_every_result(data: Path) -> None:
    con = open_readonly(data)
    names = [result.reader.schema.names for result in execute_each(con, "select 1 as a;\nselect 2 as b")]
    assert names == [["a"], ["b"]]


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("select 1;", True),
        ("select 1", False),
        ("select ';'", False),
        ("select ';' ;", True),
        ("select 1; -- done", True),
        ("select 1 -- ;", False),
        ("select /* ; */ 1", False),
        ("select $$a;b$$;", True),
        ('select "a;b"', False),
        ("select 'it''s';", True),
    ],
)
def test_statement_complete(text: str, complete: bool) -> None:
    assert statement_complete(text) is complete


# --- read-only, enforced by DuckDB ------------------------------------------------------------


def attacks(data: Path, outside: Path) -> list[str]:
    part = next(data.glob("event_date=*/*.parquet"))
    manifest = data / "_analyzer" / "manifest.sqlite"
    return [
        f"copy events to '{outside}/x.csv'",
        f"copy events to '{data}/x.csv'",
        f"copy (select 1 as x) to '{part.parent}/part-evil.parquet' (format parquet)",
        f"copy (select 42 as x) to '{part}' (format csv, use_tmp_file false)",
        f"copy (select 1 as x) to '{outside}/p' (format parquet, partition_by (x))",
        f"export database '{outside}/export'",
        f"attach '{outside}/new.duckdb' as db",
        f"attach '{manifest}' as m (type sqlite)",
        f"attach '{part}' as p",
        "install httpfs",
        "load httpfs",
        "set enable_external_access = true",
        "reset enable_external_access",
        "set lock_configuration = false",
        f"set allowed_directories = ['{data}']",
        f"set allowed_paths = ['{part}']",
        f"set temp_directory = '{data}'",
        f"set secret_directory = '{data}'",
        "set profiling_output = '/tmp/profile.json'",
        "create persistent secret s (type s3, key_id 'a', secret 'b')",
        f"select * from read_text('{manifest}')",
        f"select * from read_blob('{part}')",
        "select * from read_csv('/etc/passwd')",
        f"select * from glob('{data}/*')",
        f"select * from read_parquet('{data}/**/*.parquet')",
        f"select * from '{part}'",
        f"create table stolen as select * from read_parquet('{part}')",
        "select * from con",  # a Python variable, by name
        "select getenv('HOME')",
    ]


def test_no_attack_touches_a_file(data: Path, tmp_path: Path) -> None:
    con = open_readonly(data)  # one session: no attack may open the way for the next
    before = fingerprint(data)  # (after opening: SQLite may add its -wal/-shm files to a reader's manifest)
    failures = []
    for attack in attacks(data, tmp_path):
        try:
            query_arrow(con, attack)
            failures.append(attack)
        except QueryError:
            pass
    assert failures == [], "these statements were not refused"
    assert query_arrow(con, "select count(*) as n from events").to_pylist() == [{"n": 12}]
    assert fingerprint(data) == before
    assert list(tmp_path.iterdir()) == []


def test_refusals_are_duckdb_permission_errors(data: Path, tmp_path: Path) -> None:
    con = open_readonly(data)
    with pytest.raises(QueryError, match="Permission Error"):
        query_arrow(con, f"copy events to '{tmp_path}/x.csv'")
    with pytest.raises(QueryError, match="configuration has been locked"):
        query_arrow(con, "set enable_external_access = true")


def test_dropping_views_stays_in_memory(data: Path) -> None:
    con = open_readonly(data)
    before = fingerprint(data)
    query_arrow(con, "drop view events; drop view events_all; create table t as select 1 as x; delete from t")
    assert fingerprint(data) == before
    assert run("select count(*) as n from events", data).to_pylist() == [{"n": 12}]


def test_harmless_settings_stay_changeable(data: Path) -> None:
    con = open_readonly(data)
    table = query_arrow(con, "set TimeZone = 'Europe/Paris'; select current_setting('TimeZone') as tz")
    assert table.to_pylist() == [{"tz": "Europe/Paris"}]
    for cap in ("set threads = 2", "set memory_limit = '100GB'"):  # the tool's caps, not the query's
        with pytest.raises(QueryError, match="configuration has been locked"):
            query_arrow(con, cap)


def test_cli_refuses_copy_with_exit_1(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    code, output = sql(runner, data, f"COPY events TO '{tmp_path}/x.csv'")
    assert code == 1 and "Permission Error" in output and "Traceback" not in output
    assert not (tmp_path / "x.csv").exists()


def test_output_inside_the_dataset_is_refused(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select 1", "--output", str(data / "event_date=2026-11-20" / "x.parquet"))
    assert code == 1 and "outside the dataset" in output


# --- the command: input, formats, errors ------------------------------------------------------


def test_table_shows_rows_and_count(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select eventID, userIdentity.userName as who from events order by 1 limit 2")
    assert code == 0, output
    assert "00000000-0000-0000-0000-000000000000" in output and "alice" in output and "2 rows" in output


def test_table_is_cut_with_a_note(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select eventID from events", "--max-rows", "5")
    assert code == 0, output
    assert output.count("00000000-0000") == 5
    assert "12 rows (5 shown, 7 not shown" in output


def test_table_follows_the_terminal_height(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from analyzer.output import OutputFormat, emit
    from analyzer.sql import execute, open_readonly

    monkeypatch.setenv("LINES", "9")
    screen = io.StringIO()
    emit(execute(open_readonly(data), "select eventID from events"), OutputFormat.table, None, None,
         Console(file=screen, force_terminal=True, color_system=None, width=100))
    output = screen.getvalue()
    assert output.count("00000000-0000") == 4 and "8 not shown: --max-rows 0" in output


def test_a_piped_table_has_every_row(runner: CliRunner, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: `analyzer sql ... | wc -l` gave the terminal's height, not the rows."""
    monkeypatch.setenv("LINES", "9")
    code, output = sql(runner, data, "select eventID from events")
    assert code == 0 and output.count("00000000-0000") == 12 and "not shown" not in output


def test_table_shows_control_characters_escaped(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select userIdentity.userName from events where userIdentity.userName like 'eve%'")
    assert code == 0 and "eve\\x1b[31mADMIN\\x1b[0m" in output and "\x1b" not in output


def test_csv(runner: CliRunner, data: Path) -> None:
    query = "select eventID, eventTime, readOnly, userIdentity from events order by 1"
    code, output = sql(runner, data, query, "-F", "csv")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert len(rows) == 12 and rows[0]["eventTime"] == "2026-11-20T10:00:00Z" and rows[0]["readOnly"] == "true"
    assert json.loads(rows[0]["userIdentity"])["userName"] == "alice"


def test_repeated_column_names_keep_every_value(runner: CliRunner, data: Path) -> None:
    assert sql(runner, data, "select 1 as a, 2 as a", "-F", "csv") == (0, "a,a\n1,2\n")
    assert sql(runner, data, "select 1 as a, 2 as a", "-F", "jsonl") == (0, '{"a":1,"a_2":2}\n')


def test_table_to_a_file_has_every_row(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    code, _ = sql(runner, data, "select * from events", "-o", str(tmp_path / "t.txt"))
    text = (tmp_path / "t.txt").read_text()
    assert code == 0 and "12 rows\n" in text and "not shown" not in text and "source_object" in text


def test_json(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select eventID, event_date, count(*) over () as n from events", "-F", "json")
    assert code == 0, output
    rows = json.loads(output)
    assert len(rows) == 12 and rows[0]["n"] == 12 and rows[0]["event_date"].startswith("2026-11-2")


def test_json_of_no_rows_is_an_empty_array(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select * from events where false", "-F", "json")
    assert code == 0 and json.loads(output) == []


def test_jsonl(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select userIdentity, requestParameters from events", "--format", "jsonl")
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 12 and lines[0]["userIdentity"]["type"] == "IAMUser"


def test_parquet_to_a_file_by_its_suffix(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    code, output = sql(runner, data, "select * from events", "--output", str(target))
    assert code == 0, output
    assert pq.read_table(target).num_rows == 12 and [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_parquet_to_a_pipe(runner: CliRunner, data: Path) -> None:
    result = runner.invoke(app, ["sql", "-d", str(data), "-F", "parquet", "select eventID from events"])
    assert result.exit_code == 0
    assert pq.read_table(io.BytesIO(result.stdout_bytes)).num_rows == 12


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_text_formats_to_a_file(runner: CliRunner, data: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "out.txt"
    code, output = sql(runner, data, "select eventID from events", "-F", fmt, "-o", str(target))
    assert code == 0 and output == ""
    assert target.read_text().count("00000000-0000") == 12


def test_a_failed_query_leaves_the_output_file_alone(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    code, _ = sql(runner, data, "select cast(eventName as int) from events", "-o", str(target))
    assert code == 1 and target.read_text() == "previous\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_query_from_file(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text("-- how many\nselect count(*) as n\nfrom events;\n")
    code, output = sql(runner, data, "--file", str(query), "-F", "csv")
    assert code == 0 and output == "n\n12\n"


def test_query_from_stdin(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "-F", "csv", input="select count(*) as n from events;\n")
    assert code == 0 and output == "n\n12\n"
    code, output = sql(runner, data, "-", "-F", "csv", input="select 2 as two")
    assert code == 0 and output == "two\n2\n"


def test_query_and_file_together_is_a_usage_error(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select 1")
    code, _ = sql(runner, data, "select 1", "--file", str(tmp_path / "q.sql"))
    assert code == 2


def test_empty_stdin_is_an_error(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, input="  -- nothing\n")
    assert code == 1 and "no SQL statement" in output


def test_syntax_error_prints_message_and_position(runner: CliRunner, data: Path) -> None:
    code, output = sql(runner, data, "select *\nfrom events\nwhere eventName = 'x' orderr by 1")
    assert code == 1
    assert "Parser Error: syntax error at or near" in output
    assert "LINE 3: where eventName = 'x' orderr by 1\n" in output and "^" in output
    assert "Traceback" not in output


def test_missing_dataset_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    code, output = sql(runner, tmp_path / "nope", "select 1")
    assert code == 1 and "no analyzer dataset" in output


def test_fixtures_dataset_signins(runner: CliRunner, fixtures_dataset: Path) -> None:
    code, output = sql(
        runner, fixtures_dataset, "select outcome, count(*) as n from signins group by all order by 1", "-F", "csv"
    )
    assert code == 0, output
    counts = dict(row for row in csv.reader(io.StringIO(output)))
    assert int(counts["Success"]) > 0 and int(counts["Failure"]) > 0


# --- the prompt ---------------------------------------------------------------------------------


def run_prompt(data: Path, lines: list[str | type[BaseException]]) -> tuple[str, str, list[str]]:
    """Drive the prompt's read-eval loop with scripted lines (an exception type is raised instead)."""
    out, err = io.StringIO(), io.StringIO()
    prompts: list[str] = []
    feed = iter(lines)

    def read(prompt: str) -> str:
        prompts.append(prompt)
        line = next(feed, EOFError)
        if isinstance(line, type):
            raise line()
        return line

    repl(
        open_readonly(data),
        read=read,
        console=Console(file=out, width=120, highlight=False),
        errors=Console(file=err, width=120, highlight=False),
        max_rows=0,
    )
    return out.getvalue(), err.getvalue(), prompts


def test_prompt_runs_multi_line_statements(data: Path) -> None:
    out, _, prompts = run_prompt(data, ["select count(*)", "  as n", "from events;", ".quit", "select 'not run';"])
    assert "12" in out and "1 row" in out and "not run" not in out
    assert prompts == ["sql> ", " ..> ", " ..> ", "sql> "]


def test_prompt_shows_every_statement_of_a_line(data: Path) -> None:
    out, _, _ = run_prompt(data, ["select 'first' as a; select 'second' as b;"])
    assert "first" in out and "second" in out


def test_prompt_reports_errors_and_goes_on(data: Path) -> None:
    out, err, _ = run_prompt(data, ["select nosuch from events;", f"copy events to '{data}/x.csv';", "select 7 as x;"])
    assert "LINE 1: select nosuch from events" in err and "Permission Error" in err
    assert "7" in out and not (data / "x.csv").exists()


def test_prompt_ctrl_c_cancels_the_statement_and_ctrl_d_leaves(data: Path) -> None:
    out, err, prompts = run_prompt(data, ["select 'half", KeyboardInterrupt, "select 'whole' as w;"])
    assert "whole" in out and err.count("error") == 0 and prompts[-1] == "sql> "


def test_prompt_dot_commands(data: Path) -> None:
    out, err, _ = run_prompt(data, [".help", ".tables", ".nope", ".exit"])
    assert "principal_timeline" in out and "signins" in out and "unknown command .nope" in err


def read_until(fd: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.slow
def test_prompt_at_a_real_terminal_keeps_history(data: Path, tmp_path: Path) -> None:
    parent, child = pty.openpty()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": "",
        "PYTHONPATH": str(ROOT),
        "TERM": "dumb",
        "LINES": "40",
        "COLUMNS": "120",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from analyzer.cli import main; main()", "sql", "--data", str(data)],
        stdin=child, stdout=child, stderr=child, env=env, close_fds=True,
    )
    os.close(child)
    try:
        assert b"sql> " in read_until(parent, b"sql> ")
        os.write(parent, b"select count(*) as n\n")
        assert b" ..> " in read_until(parent, b" ..> ")
        os.write(parent, b"from signins;\n")
        shown = read_until(parent, b"sql> ")
        assert b"1 row" in shown
        os.write(parent, b".quit\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(parent)
    history = (tmp_path / ".local" / "state" / "analyzer" / "history").read_text()
    assert "select count(*) as n" in history and "from signins;" in history


def test_stdin_that_is_not_a_terminal_is_a_query_not_a_prompt(data: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from analyzer.cli import main; main()", "sql", "-d", str(data), "-F", "csv"],
        input="select 3 as x;", capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60, check=False,
    )
    assert result.returncode == 0 and result.stdout == "x\n3\n"


def test_connection_is_duckdb(data: Path) -> None:
    assert isinstance(open_readonly(data), duckdb.DuckDBPyConnection)
