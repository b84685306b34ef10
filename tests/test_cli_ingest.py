"""`analyzer ingest`, `schema` and `quarantine` from the command line."""

from __future__ import annotations

from hashlib import sha256
from pathlib import Path

from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.schema import SCHEMA

from records import log_key, record, write_log


def test_ingest_prints_summary_and_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1), record(2)])
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "files: 1 ingested" in result.output and "events: 2 in" in result.output


def test_partial_run_exits_4_and_names_the_file(runner: CliRunner, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1)])
    (tmp_path / "in" / "broken.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(tmp_path / "d")])
    assert result.exit_code == 4, result.output
    assert f"failed: {tmp_path / 'in' / 'broken.json.gz'}: corrupt gzip" in result.output


def test_quiet_prints_nothing(runner: CliRunner, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1)])
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "-d", str(tmp_path / "d"), "--quiet"])
    assert result.exit_code == 0 and result.output == ""


def test_missing_path_is_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--data", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "no such file or directory" in result.output and "Traceback" not in result.output


def test_quarantine_lists_records_with_reasons(runner: CliRunner, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [record(1), record(2, time="soon")])
    runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(tmp_path / "d")])
    result = runner.invoke(app, ["quarantine", "--data", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "#1: unreadable eventTime 'soon'" in result.output and "1 quarantined record(s)" in result.output


def test_schema_lists_every_column(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    for field in SCHEMA:
        assert f"\n{field.name}: " in "\n" + result.output
    assert "  mfaAuthenticated: string" in result.output and "requestParameters: json" in result.output


def test_no_compact_then_compact_command(runner: CliRunner, tmp_path: Path) -> None:
    for n in range(3):
        write_log(tmp_path / "in", log_key(n, f"K{n}"),
                  [record(n * 10 + i, requestParameters={"nonce": "".join(sha256(bytes([n, i, k])).hexdigest()
                                                                          for k in range(4))})
                   for i in range(10)])
    assert all(p.stat().st_size > 1100 for p in (tmp_path / "in").rglob("*.gz"))  # one object per 0.001 MB batch
    data = tmp_path / "d"
    result = runner.invoke(app, ["ingest", str(tmp_path / "in"), "-d", str(data), "--batch-mb", "0.001",
                                 "--workers", "1", "--no-compact"])
    assert result.exit_code == 0 and "compacted" not in result.output
    assert len(list(data.glob("event_date=*/*.parquet"))) == 3

    result = runner.invoke(app, ["compact", "-d", str(data)])
    assert result.exit_code == 0, result.output
    assert "compacted: 3 files into 1 in 1 day partition(s), 30 rows" in result.output
    assert len(list(data.glob("event_date=*/*.parquet"))) == 1
    result = runner.invoke(app, ["compact", "-d", str(data), "--all"])  # nothing left to do
    assert result.exit_code == 0 and "compacted: 0 files into 0 in 1 day partition(s)" in result.output


def test_compact_on_a_missing_dataset_is_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["compact", "-d", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no analyzer dataset here" in result.output
