"""Issue 11, findings 1 and 2: every query the tool runs for the user runs in one sandbox.

Ad-hoc SQL (``analyzer sql``, :func:`analyzer.sql.open_readonly`), the catalogue and detection
cases (:func:`analyzer.store.connect`) must open no file but the dataset's, write none, change no
setting (memory and thread caps included), and stop at a time limit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.detect import load_catalogue, run_detections
from analyzer.detect.catalogue import default_queries_dir
from analyzer.errors import AnalyzerError
from analyzer.sources.local import walk
from analyzer.sql import QueryError, open_readonly, query_arrow
from analyzer.store import sandbox

from records import log_key, record, write_log

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    write_log(logs, log_key(0), [record(i, time=f"2026-11-{20 + i % 2}T10:{i:02d}:00Z") for i in range(6)])
    target = tmp_path_factory.mktemp("sandbox-data")
    assert ingest_objects(walk([logs]), target, workers=1).failed == 0
    return target


@pytest.fixture
def in_cwd_with_tmp(tmp_path: Path) -> Iterator[Path]:
    """The current directory has a ``.tmp`` (DuckDB's default temp_directory, auto-allowed)."""
    work = tmp_path / "cwd"
    (work / ".tmp").mkdir(parents=True)
    before = Path.cwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(before)


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def attacks(data: Path, out: Path) -> list[str]:
    part = next(data.glob("event_date=*/*.parquet"))
    return [
        "copy (select * from events_all) to '.tmp/x.parquet'",
        "attach '.tmp/x.duckdb' as x",
        "export database '.tmp/exp'",
        f"copy (select 1 as x) to '{out}/x.csv'",
        f"copy (select * from events_all) to '{part}' (use_tmp_file false)",
        f"attach '{part}' as p",
        f"explain analyze copy (select 1 as x) to '{part}' (use_tmp_file false)",
        f"prepare w as copy (select 1 as x) to '{part}' (use_tmp_file false); execute w",
        f"export database '{out}/exp'",
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        f"select * from glob('{data}/*')",
        f"select * from read_parquet('{data}/**/*.parquet')",
        "select * from '/etc/passwd'",
        "install httpfs",
        "load httpfs",
        "set memory_limit = '100GB'",
        "set threads = 64",
        "set enable_external_access = true",
        "set lock_configuration = false",
        "set temp_directory = '.tmp'",
        f"set allowed_directories = ['{out}']",
        "set autoload_known_extensions = true",
        "create persistent secret s (type s3, key_id 'a', secret 'b')",
    ]


@pytest.mark.parametrize("opener", ["connect", "open_readonly"])
def test_no_attack_escapes_either_connection(opener: str, data: Path, tmp_path: Path, in_cwd_with_tmp: Path) -> None:
    """Both ways the tool opens the dataset refuse every attack; nothing is written anywhere."""
    out = tmp_path / "out"
    out.mkdir()
    con = connect(data) if opener == "connect" else open_readonly(data)
    before = fingerprint(data)
    escaped = []
    for attack in attacks(data, out):
        try:
            query_arrow(con, attack)
            escaped.append(attack)
        except QueryError:
            pass
    assert escaped == []
    assert query_arrow(con, "select count(*) as n from events").to_pylist() == [{"n": 6}]
    assert fingerprint(data) == before
    assert list(out.iterdir()) == [] and list((in_cwd_with_tmp / ".tmp").iterdir()) == []


def test_the_lockdown_is_read_back_at_connect(data: Path) -> None:
    con = connect(data)
    settings = dict(con.execute("select name, value from duckdb_settings()").fetchall())
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
    assert settings["temp_directory"] == "" and settings["allowed_directories"] == "[]"
    files = sorted(str(p) for p in data.glob("event_date=*/*.parquet"))
    assert sorted(con.execute("select current_setting('allowed_paths')").fetchall()[0][0]) == files
    assert open_readonly(data).execute("select current_setting('allowed_paths')").fetchall()[0][0] == []


def test_a_changed_default_fails_loudly() -> None:
    """If DuckDB ignored a setting (an upgrade that changes a default), connect() must raise."""
    con = duckdb.connect()
    con.execute("set enable_external_access = false")  # but not locked, temp_directory still .tmp
    with pytest.raises(sandbox.SandboxError, match="lock_configuration"):
        sandbox.assert_sealed(con)


def test_a_detection_reading_a_file_fails(data: Path, tmp_path: Path) -> None:
    """Finding 2: a user detection reading a file passes the load-time lint, but cannot open it."""
    secret = tmp_path / "x.csv"
    secret.write_text("a\n1\n")
    root = tmp_path / "queries"
    root.mkdir()
    for suffix in (".sql", ".toml"):
        shutil.copy(default_queries_dir() / f"_template{suffix}", root / f"template-example{suffix}")
    sql = root / "template-example.sql"
    text = sql.read_text()
    sneaky = text.replace("eventName = 'CreateAccessKey'\n",
                          f"eventName = 'CreateAccessKey'\n      and not exists (select 1 from '{secret}')\n", 1)
    assert sneaky != text
    sql.write_text(sneaky)
    catalogue = load_catalogue(root)  # loads: the regex guard does not see it
    with pytest.raises(AnalyzerError, match="Permission Error"):
        run_detections(connect(data), catalogue=catalogue)


def test_a_detection_cannot_copy_over_the_dataset(data: Path) -> None:
    part = next(data.glob("event_date=*/*.parquet"))
    con = connect(data)
    with pytest.raises(sandbox.SandboxError, match="COPY"):
        sandbox.check_statements(con, f"select 1; copy (select 1) to '{part}' (use_tmp_file false)")


def test_a_query_stops_at_its_time_limit(data: Path) -> None:
    con = open_readonly(data)
    started = time.monotonic()
    with pytest.raises(sandbox.QueryTimeout, match="time limit"):
        query_arrow(con, "select count(*) from range(100000000000) a", timeout=0.5)
    assert time.monotonic() - started < 5
    assert query_arrow(con, "select 1 as x", timeout=5).to_pylist() == [{"x": 1}]  # the connection still works


def test_cli_sql_timeout_is_one_line(data: Path) -> None:
    result = CliRunner().invoke(app, ["sql", "--data", str(data), "--timeout", "0.5",
                                      "select count(*) from range(100000000000) a"])
    assert result.exit_code == 1
    assert "time limit" in result.output and "Traceback" not in result.output


def test_cli_sql_refuses_copy_into_dot_tmp(data: Path, in_cwd_with_tmp: Path) -> None:
    attack = "copy (select * from events_all) to '.tmp/x.parquet'"
    result = CliRunner().invoke(app, ["sql", "--data", str(data), attack])
    assert result.exit_code == 1 and "Permission Error" in result.output
    assert list((in_cwd_with_tmp / ".tmp").iterdir()) == []
