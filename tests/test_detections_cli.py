"""`analyzer detections new ID` and `analyzer detections test [DIR]`: scaffold, test, see the diff."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.detect import default_queries_dir, load_catalogue


def new(runner: CliRunner, folder: Path, detection_id: str = "bucket-made-public") -> str:
    result = runner.invoke(app, ["detections", "new", detection_id, "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return result.output


def test_new_scaffolds_a_detection_that_passes_its_cases(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "mine"  # made if missing
    output = new(runner, folder)
    assert "detections test" in output and "--queries" in output
    meta = tomllib.loads((folder / "bucket-made-public.toml").read_text())
    assert meta["id"] == "bucket-made-public"
    assert meta["uuid"] != tomllib.loads((default_queries_dir() / "_template.toml").read_text())["uuid"]
    assert "bucket-made-public" in (folder / "bucket-made-public.sql").read_text()
    result = runner.invoke(app, ["detections", "test", str(folder)])
    assert result.exit_code == 0, result.output
    assert re.search(r"^PASS bucket-made-public: an admin creates a key for another user$", result.output, re.M)
    assert "1 detection(s), 3 case(s): 3 passed, 0 failed" in result.output


def test_two_scaffolds_have_different_uuids(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path, "one-rule")
    new(runner, tmp_path, "two-rule")
    assert len(load_catalogue(extra=[tmp_path])) == len(load_catalogue()) + 2


def test_new_never_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    sql = tmp_path / "bucket-made-public.sql"
    sql.write_text("-- mine\n")
    result = runner.invoke(app, ["detections", "new", "bucket-made-public", "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert sql.read_text() == "-- mine\n"


def test_new_refuses_a_bad_or_bundled_id(runner: CliRunner, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["detections", "new", "Bad_Id", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and "lowercase words" in bad.output
    bundled = runner.invoke(app, ["detections", "new", "root-activity", "--dir", str(tmp_path)])
    assert bundled.exit_code == 1 and "is a bundled detection" in bundled.output
    assert not list(tmp_path.iterdir())


def test_a_failing_case_prints_the_diff_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    meta = tmp_path / "bucket-made-public.toml"
    meta.write_text(meta.read_text().replace('source_ip = "192.0.2.1"', 'source_ip = "192.0.2.99"', 1))
    result = runner.invoke(app, ["detections", "test", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "FAIL bucket-made-public: an admin creates a key for another user" in lines
    assert "  source_ip: expected '192.0.2.99', got '192.0.2.1'" in lines
    assert '  -alert[0].source_ip: "192.0.2.99"' in lines and '  +alert[0].source_ip: "192.0.2.1"' in lines
    assert "PASS bucket-made-public: near miss: the call was denied" in lines
    assert "1 detection(s), 3 case(s): 2 passed, 1 failed" in lines


def test_a_negative_case_that_alerts_shows_the_alert(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    meta = tmp_path / "bucket-made-public.toml"
    text = meta.read_text()
    near_miss = text.index('name = "near miss: a user creates their own key"')
    meta.write_text(
        text[:near_miss]
        + text[near_miss:].replace('requestParameters.userName = "bob"', 'requestParameters.userName = "carol"', 1)
    )
    result = runner.invoke(app, ["detections", "test", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    assert "  -alerts: 0" in result.output and "  +alerts: 1" in result.output
    assert '  +alert[0].principal: "arn:aws:iam::111122223333:user/bob"' in result.output
    assert "PASS" not in result.output  # --quiet: failures and the summary only


def test_catalogue_problems_fail_the_test_run(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    meta = tmp_path / "bucket-made-public.toml"
    meta.write_text(meta.read_text().replace('severity = "medium"', 'severity = "urgent"'))
    result = runner.invoke(app, ["detections", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert f"FAIL {meta}: severity 'urgent'" in result.output


def test_sql_problems_fail_the_test_run(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    sql = tmp_path / "bucket-made-public.sql"
    sql.write_text(sql.read_text().replace("    sourceIPAddress as source_ip,\n", ""))
    result = runner.invoke(app, ["detections", "test", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing source_ip" in result.output and "SQL problem(s)" in result.output


def test_case_names_are_shown_as_text(runner: CliRunner, tmp_path: Path) -> None:
    """A case name is a user's text: terminal escapes in it are shown, not sent to the terminal."""
    new(runner, tmp_path)
    meta = tmp_path / "bucket-made-public.toml"
    meta.write_text(
        meta.read_text().replace(
            'name = "near miss: the call was denied"', 'name = "near miss \\u001b]8;;http://x\\u0007denied"'
        )
    )
    result = runner.invoke(app, ["detections", "test", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_the_bundled_catalogue_by_id(runner: CliRunner) -> None:
    result = runner.invoke(app, ["detections", "test", "--only", "root-activity"])
    assert result.exit_code == 0, result.output
    detection = load_catalogue()["root-activity"]
    assert f"1 detection(s), {len(detection.cases)} case(s): {len(detection.cases)} passed, 0 failed" in result.output
    checkout = runner.invoke(app, ["detections", "test", str(default_queries_dir()), "--only", "root-activity"])
    assert checkout.exit_code == 0, checkout.output  # the catalogue's own folder is the catalogue, not a clash
    unknown = runner.invoke(app, ["detections", "test", "--only", "no-such-thing"])
    assert unknown.exit_code == 2 and "unknown detection" in unknown.output


def test_list_and_show_take_user_folders_and_sigma_rules(runner: CliRunner, tmp_path: Path) -> None:
    new(runner, tmp_path)
    listed = runner.invoke(app, ["detections", "--queries", str(tmp_path), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert "bucket-made-public" in {d["id"] for d in json.loads(listed.stdout)}
    shown = runner.invoke(app, ["detections", "show", "bucket-made-public", "--queries", str(tmp_path)])
    assert shown.exit_code == 0 and "SQL (bucket-made-public.sql)" in shown.output


def test_show_prints_a_sigma_rule_with_its_bound_values_and_no_escapes(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("sigma")
    rule = tmp_path / "rule.yml"
    rule.write_text(
        'title: "evil \\e]8;;http://x\\a title"\nid: 0b9e0d0e-7d2c-4a53-9d5f-1f1f1f1f1f1f\nauthor: me\n'
        "logsource:\n    product: aws\n    service: cloudtrail\n"
        "detection:\n    selection:\n        eventName: DeleteTrail\n    condition: selection\nlevel: high\n"
    )
    shown = runner.invoke(
        app, ["detections", "show", "sigma:0b9e0d0e-7d2c-4a53-9d5f-1f1f1f1f1f1f", "--sigma", str(rule)]
    )
    assert shown.exit_code == 0, shown.output
    assert '$sigma_0 = "DeleteTrail"' in shown.output and 'e."eventName" = $sigma_0' in shown.output
    assert "\x1b" not in shown.output and "\x07" not in shown.output and "\\x1b" in shown.output


def test_a_case_run_is_sandboxed_too(runner: CliRunner, tmp_path: Path) -> None:
    """`detections test` runs a user's SQL on sealed connections: a file read fails, and its content never shows."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-never-shown")
    folder = tmp_path / "mine"
    new(runner, folder)
    sql = folder / "bucket-made-public.sql"
    sql.write_text(
        sql.read_text().replace(
            "    json_object('target_user_name', target_user_name) as details\nfrom for_other_users",
            "    json_object('target_user_name', target_user_name, 'stolen', s.content) as details\n"
            f"from for_other_users, \"read_text\"('{secret}') as s",
        )
    )
    result = runner.invoke(app, ["detections", "test", str(folder)])
    assert result.exit_code == 1
    assert "Permission Error" in result.output and "0 passed" in result.output
    assert "s3cr3t-never-shown" not in result.output
