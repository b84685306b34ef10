"""Where reports go: the suffix chooses the format, contradictions are refused, several formats in one run."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_cli_detect import detect, one_alert  # noqa: F401 - one_alert is a fixture
from typer.testing import CliRunner

from analyzer.alerts import Format
from analyzer.alerts.outputs import FILE_NAMES, OutputError, format_for, plan, suffix_format
from analyzer.cli import app


def _usage_line(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line: what is wrong and what to do
    return lines[0]


@pytest.mark.parametrize(("name", "expected"), [
    ("report.html", Format.html), ("r.HTM", Format.html), ("r.json", Format.json), ("r.jsonl", Format.jsonl),
    ("r.ndjson", Format.jsonl), ("r.md", Format.markdown), ("r.csv", Format.csv), ("r.ocsf.json", Format.ocsf),
    ("r.ocsf.jsonl", Format.ocsf), ("r.txt", Format.table), ("my.report.json", Format.json),
])
def test_the_suffix_chooses_the_format(name: str, expected: Format) -> None:
    assert format_for(Path(name), None) is expected


@pytest.mark.parametrize("name", ["out.xlsx", "report", "report.pdf", ".json", "r.ocsf"])
def test_a_suffix_that_names_no_format_is_refused(name: str) -> None:
    with pytest.raises(OutputError, match="names no report format"):
        format_for(Path(name), None)


@pytest.mark.parametrize(("name", "given"), [("r.csv", Format.json), ("r.ocsf.json", Format.json),
                                             ("r.html", Format.markdown), ("r.json", Format.ocsf)])
def test_a_suffix_that_contradicts_format_is_refused(name: str, given: Format) -> None:
    with pytest.raises(OutputError, match=f"means --format {suffix_format(Path(name))[1]}, not {given}"):
        format_for(Path(name), given)


def test_a_given_format_takes_a_neutral_or_unknown_suffix() -> None:
    assert format_for(Path("r.txt"), Format.csv) is Format.csv
    assert format_for(Path("alerts.log"), Format.jsonl) is Format.jsonl  # the format was said: nothing to guess


def test_several_formats_need_an_output_dir() -> None:
    with pytest.raises(OutputError, match="need --output-dir"):
        plan([Format.html, Format.csv], None, None)
    with pytest.raises(OutputError, match="not both"):
        plan([Format.html], Path("r.html"), Path("out"))
    assert [o.path for o in plan([Format.html, Format.ocsf, Format.html], None, Path("out"))] == [
        Path("out/report.html"), Path("out/alerts.ocsf.jsonl")]


# --- through the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "check"), [
    ("report.html", lambda t: t.startswith("<!doctype html>")),
    ("report.md", lambda t: t.startswith("# CloudTrail detections")),
    ("alerts.csv", lambda t: next(csv.reader(io.StringIO(t)))[0] == "fingerprint"),
    ("alerts.jsonl", lambda t: "fingerprint" in json.loads(t.splitlines()[0])),
    ("report.json", lambda t: "summary" in json.loads(t)),
    ("alerts.ocsf.json", lambda t: json.loads(t.splitlines()[0])["class_uid"] == 2004),
    ("report.txt", lambda t: t.startswith("Window:")),
])
def test_detect_output_takes_its_format_from_the_suffix(one_alert: Path, tmp_path: Path, name: str,  # noqa: F811
                                                        check: Any) -> None:
    result = detect(CliRunner(), one_alert, "-o", str(tmp_path / name))
    assert result.exit_code == 3, result.output
    assert check((tmp_path / name).read_text()), (tmp_path / name).read_text()[:300]
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_detect_refuses_an_unknown_suffix_before_any_work(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    line = _usage_line(detect(CliRunner(), one_alert, "-o", str(tmp_path / "out.xlsx")))
    assert "out.xlsx" in line and "'.xlsx' names no report format" in line and "--format" in line
    assert list(tmp_path.iterdir()) == []


def test_detect_refuses_a_suffix_contradicting_format(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    line = _usage_line(detect(CliRunner(), one_alert, "--format", "json", "-o", str(tmp_path / "r.csv")))
    assert "means --format csv, not json" in line and list(tmp_path.iterdir()) == []


def test_detect_refuses_several_formats_without_a_folder(one_alert: Path) -> None:  # noqa: F811
    assert "--output-dir" in _usage_line(detect(CliRunner(), one_alert, "-f", "html", "-f", "csv"))


def test_output_dir_writes_every_format_of_one_run(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner()
    formats = ["html", "json", "jsonl", "markdown", "csv", "ocsf", "table"]
    out = tmp_path / "reports" / "today"  # made if missing
    result = detect(runner, one_alert, *[a for f in formats for a in ("-f", f)], "--output-dir", str(out))
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES[Format(f)] for f in formats)
    assert result.stdout == "" and "reports written to" in result.stderr
    for fmt in ("jsonl", "csv", "ocsf"):  # the same run as each format alone (the others carry a time)
        alone = detect(runner, one_alert, "-f", fmt).stdout
        written = (out / FILE_NAMES[Format(fmt)]).read_text()
        if fmt == "ocsf":  # "time" is when the report was made
            alone, written = (re.sub(r'"(time|created_time)":\d+', "", t) for t in (alone, written))
        assert written == alone


def test_output_dir_defaults_to_the_shareable_formats(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    result = detect(CliRunner(), one_alert, "--output-dir", str(tmp_path))
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alerts.csv", "alerts.jsonl", "alerts.ocsf.jsonl", "report.html", "report.json"]


def test_output_dir_replaces_files_atomically(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "alerts.jsonl").write_text("old\n")
    result = detect(CliRunner(), one_alert, "-f", "jsonl", "--output-dir", str(tmp_path))
    assert result.exit_code == 3 and (tmp_path / "alerts.jsonl").read_text().startswith('{"fingerprint":')
    assert [p.name for p in tmp_path.iterdir()] == ["alerts.jsonl"]


# --- sql -o ------------------------------------------------------------------------------------------


def test_sql_refuses_an_unknown_suffix(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(app, ["sql", "--data", str(one_alert), "select 1", "-o", str(tmp_path / "out.xlsx")])
    line = _usage_line(result)
    assert "out.xlsx" in line and ".xlsx" in line and list(tmp_path.iterdir()) == []


def test_sql_refuses_a_suffix_contradicting_format(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(app, ["sql", "--data", str(one_alert), "select 1", "-F", "json",
                                      "-o", str(tmp_path / "out.csv")])
    assert "csv" in _usage_line(result) and list(tmp_path.iterdir()) == []


def test_sql_keeps_its_known_suffixes(one_alert: Path, tmp_path: Path) -> None:  # noqa: F811
    for name in ("out.csv", "out.txt", "out.jsonl"):
        result = CliRunner().invoke(app, ["sql", "--data", str(one_alert), "select 1 as n", "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text() == "n\n1\n" and "n" in (tmp_path / "out.txt").read_text()
