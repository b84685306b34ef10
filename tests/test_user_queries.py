"""Detections users bring (`--queries DIR`): loaded and checked like the bundled ones, clashes named,
both case-record forms read, and every query on the sealed connection: file access is refused."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.detect import CatalogueError, default_queries_dir, load_catalogue, run_detections
from analyzer.detect.catalogue import case_records
from analyzer.detect.lint import check_user_detections
from analyzer.errors import AnalyzerError
from analyzer.store import connect

from records import log_key, record, write_log

TEMPLATE = default_queries_dir()
ADMIN = "arn:aws:iam::111122223333:user/admin"


def user_detection(
    folder: Path, detection_id: str = "my-rule", *, sql: str | None = None, meta_uuid: str | None = None
) -> Path:
    """The template as a user's detection ``detection_id`` in ``folder`` (a new uuid unless given)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (TEMPLATE / "_template.toml").read_text().replace("template-example", detection_id)
    text = re.sub(r'^uuid = "[^"]+"', f'uuid = "{meta_uuid or uuid.uuid4()}"', text, count=1, flags=re.MULTILINE)
    (folder / f"{detection_id}.toml").write_text(text)
    body = sql if sql is not None else (TEMPLATE / "_template.sql").read_text()
    (folder / f"{detection_id}.sql").write_text(body.replace("template-example", detection_id))
    return folder


def key_for_other_user(i: int = 1) -> dict[str, Any]:
    identity = {
        "type": "IAMUser",
        "principalId": "AIDA1",
        "arn": ADMIN,
        "accountId": "111122223333",
        "userName": "admin",
    }
    return record(
        i,
        eventSource="iam.amazonaws.com",
        eventName="CreateAccessKey",
        userIdentity=identity,
        readOnly=False,
        requestParameters={"userName": "bob"},
    )


@pytest.fixture
def dataset(tmp_path: Path, runner: CliRunner) -> Path:
    write_log(tmp_path / "in", log_key(), [key_for_other_user(1), record(2)])
    data = tmp_path / "data"
    assert runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(data), "--quiet"]).exit_code == 0
    return data


# --- loading -------------------------------------------------------------------------------------------------


def test_a_user_folder_loads_beside_the_bundled_catalogue(tmp_path: Path) -> None:
    catalogue = load_catalogue(extra=[user_detection(tmp_path / "mine")])
    assert catalogue["my-rule"].origin == "user"
    assert catalogue["root-activity"].origin == "bundled"
    assert len(catalogue) == len(load_catalogue()) + 1
    check_user_detections(catalogue)  # the template's SQL passes the same lints


def test_an_id_clash_with_a_bundled_detection_names_both_files(tmp_path: Path) -> None:
    folder = user_detection(tmp_path / "mine", "root-activity")
    with pytest.raises(CatalogueError) as error:
        load_catalogue(extra=[folder])
    message = str(error.value)
    assert str(folder / "root-activity.toml") in message
    assert "root-activity.toml (a bundled detection)" in message


def test_an_id_clash_between_two_folders_names_both_files(tmp_path: Path) -> None:
    one, two = user_detection(tmp_path / "one"), user_detection(tmp_path / "two")
    with pytest.raises(
        CatalogueError,
        match=re.escape(f"{two / 'my-rule.toml'}: id 'my-rule' is already defined by {one / 'my-rule.toml'}"),
    ):
        load_catalogue(extra=[one, two])


def test_a_uuid_clash_names_both(tmp_path: Path) -> None:
    bundled_uuid = load_catalogue()["root-activity"].uuid
    folder = user_detection(tmp_path / "mine", meta_uuid=bundled_uuid)
    with pytest.raises(CatalogueError, match=f"uuid {bundled_uuid} is also used by root-activity"):
        load_catalogue(extra=[folder])


def test_user_problems_name_the_full_path(tmp_path: Path) -> None:
    folder = user_detection(tmp_path / "mine")
    meta = folder / "my-rule.toml"
    meta.write_text(meta.read_text().replace('severity = "medium"', 'severity = "urgent"'))
    with pytest.raises(CatalogueError, match=re.escape(f"{meta}: severity 'urgent'")):
        load_catalogue(extra=[folder])


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="nowhere: detection folder not found"):
        load_catalogue(extra=[tmp_path / "nowhere"])


def test_user_sql_gets_the_same_lints(tmp_path: Path) -> None:
    unselective = (
        (TEMPLATE / "_template.sql")
        .read_text()
        .replace("    where eventSource = 'iam.amazonaws.com'\n      and eventName = 'CreateAccessKey'\n", "")
    )
    folder = user_detection(tmp_path / "mine", sql=unselective)
    catalogue = load_catalogue(extra=[folder])
    with pytest.raises(CatalogueError, match=re.escape(str(folder / "my-rule.sql")) + ".*first read of events"):
        check_user_detections(catalogue)


# --- case records: the readable TOML form and the older JSON string ---------------------------------------------


TOML_FORM = """
[[cases]]
name = "x"
alerts = 0

[[cases.records]]
_null = ["responseElements"]
eventTime = 2024-05-01T12:00:00Z
eventSource = "iam.amazonaws.com"
userIdentity.type = "IAMUser"
userIdentity.sessionContext.attributes.mfaAuthenticated = "false"
requestParameters = { userName = "bob", tags = [{ key = "a", value = "b" }] }
"""

JSON_FORM = """
[[cases]]
name = "x"
alerts = 0
records = '''
[{"eventTime": "2024-05-01T12:00:00Z", "eventSource": "iam.amazonaws.com", "responseElements": null,
  "userIdentity": {"type": "IAMUser", "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
  "requestParameters": {"userName": "bob", "tags": [{"key": "a", "value": "b"}]}}]
'''
"""


def test_both_record_forms_read_the_same() -> None:
    import tomllib

    toml_records = case_records(tomllib.loads(TOML_FORM)["cases"][0]["records"])
    json_records = case_records(tomllib.loads(JSON_FORM)["cases"][0]["records"])
    assert toml_records == json_records
    assert toml_records[0]["responseElements"] is None and toml_records[0]["eventTime"] == "2024-05-01T12:00:00Z"


def test_a_user_detection_with_old_form_cases_loads_and_passes(tmp_path: Path, runner: CliRunner) -> None:
    folder = user_detection(tmp_path / "mine")
    meta = folder / "my-rule.toml"
    head, _, _ = meta.read_text().partition("\n[[cases]]\n")
    old_cases = [
        {"name": "positive", "alerts": 1, "records": [{**key_for_other_user(1), "responseElements": None}]},
        {"name": "near miss one", "alerts": 0, "records": [record(2)]},
        {"name": "near miss two", "alerts": 0, "records": [record(3, eventName="CreateAccessKey")]},
    ]
    body = "".join(
        f"\n[[cases]]\nname = {json.dumps(c['name'])}\nalerts = {c['alerts']}\n"
        + (f'expect = {{ principal = "{ADMIN}", source_ip = "198.51.100.7" }}\n' if c["alerts"] else "")
        + f"records = '''\n{json.dumps(c['records'])}\n'''\n"
        for c in old_cases
    )
    meta.write_text(head + "\n" + body)
    result = runner.invoke(app, ["detections", "test", str(folder)])
    assert result.exit_code == 0, result.output
    assert "3 case(s): 3 passed, 0 failed" in result.output


# --- detect / nightly --queries ------------------------------------------------------------------------------


def test_detect_runs_a_user_folder(runner: CliRunner, dataset: Path, tmp_path: Path) -> None:
    folder = user_detection(tmp_path / "mine")
    result = runner.invoke(app, ["detect", "--data", str(dataset), "--queries", str(folder), "--format", "jsonl"])
    assert result.exit_code == 3, result.output  # access-key-for-other-user (high) is bundled and fires too
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    mine = [a for a in alerts if a["detection_id"] == "my-rule"]
    assert len(mine) == 1 and mine[0]["principal"] == ADMIN and mine[0]["details"] == {"target_user_name": "bob"}


def test_detect_refuses_a_clash_naming_both_files(runner: CliRunner, dataset: Path, tmp_path: Path) -> None:
    folder = user_detection(tmp_path / "mine", "root-activity")
    result = runner.invoke(app, ["detect", "--data", str(dataset), "--queries", str(folder)])
    assert result.exit_code == 1
    assert "root-activity.toml: id 'root-activity' is already defined by" in result.output
    assert "Traceback" not in result.output


def test_nightly_runs_a_user_folder(runner: CliRunner, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_log(logs, log_key(), [key_for_other_user(1)])
    folder = user_detection(tmp_path / "mine")
    reports = tmp_path / "reports"
    result = runner.invoke(
        app,
        [
            "nightly",
            "--source",
            str(logs),
            "--data",
            str(tmp_path / "data"),
            "--report-dir",
            str(reports),
            "--since",
            "2026-11-20",
            "--until",
            "2026-11-21",
            "--queries",
            str(folder),
            "--quiet",
        ],
    )
    assert result.exit_code == 3, result.output
    markdown = next(reports.glob("*.md")).read_text()
    assert "my-rule" in markdown and "Access key created for another user" in markdown


# --- the sandbox: a user's SQL cannot reach a file -------------------------------------------------------------

SECRET_TEXT = "s3cr3t-value-never-shown"


def file_reading_sql(function: str, secret: Path) -> str:
    """The template's query, joined to a read of ``secret`` (``function`` is how the reader is spelled)."""
    sql = (TEMPLATE / "_template.sql").read_text()
    return sql.replace(
        "    json_object('target_user_name', target_user_name) as details\nfrom for_other_users",
        f"    json_object('target_user_name', target_user_name, 'stolen', stolen.content) as details\n"
        f"from for_other_users, {function}('{secret}') as stolen",
    )


def test_a_plain_file_reader_is_refused_at_load(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT)
    folder = user_detection(tmp_path / "mine", sql=file_reading_sql("read_text", secret))
    with pytest.raises(CatalogueError, match="'read_text' is not allowed"):
        load_catalogue(extra=[folder])


def test_a_file_reader_past_the_lint_is_refused_by_the_sandbox(tmp_path: Path, dataset: Path) -> None:
    """``"read_text"(...)`` (a quoted name) slips past the load-time guard; the sealed connection refuses it."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT)
    folder = user_detection(tmp_path / "mine", sql=file_reading_sql('"read_text"', secret))
    catalogue = load_catalogue(extra=[folder])  # the regex guard does not see a quoted function name
    with pytest.raises(CatalogueError) as linted:
        check_user_detections(catalogue)  # binding on a sealed connection already fails
    assert "Permission Error" in str(linted.value) and SECRET_TEXT not in str(linted.value)
    con = connect(dataset)  # and if the lint were skipped, the run is refused by the sandbox itself
    try:
        refused = r"detection my-rule \(.*my-rule\.sql\) failed: .*Permission Error"
        with pytest.raises(AnalyzerError, match=refused) as ran:
            run_detections(con, only=["my-rule"], catalogue=catalogue)
    finally:
        con.close()
    assert SECRET_TEXT not in str(ran.value)


def test_reading_another_parquet_file_is_refused(tmp_path: Path, dataset: Path) -> None:
    """Only the dataset's own files are allowed: a Parquet file elsewhere is not readable."""
    other = next(dataset.glob("event_date=*/*.parquet"))
    copy = tmp_path / "elsewhere.parquet"
    copy.write_bytes(other.read_bytes())
    sql = (
        (TEMPLATE / "_template.sql")
        .read_text()
        .replace(
            "from for_other_users", f"from for_other_users where exists (select 1 from \"read_parquet\"('{copy}'))"
        )
    )
    catalogue = load_catalogue(extra=[user_detection(tmp_path / "mine", sql=sql)])
    con = connect(dataset)
    try:
        with pytest.raises(AnalyzerError, match="Permission Error"):
            run_detections(con, only=["my-rule"], catalogue=catalogue)
    finally:
        con.close()


def test_detect_with_a_file_reading_user_detection_exits_1(runner: CliRunner, dataset: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET_TEXT)
    folder = user_detection(tmp_path / "mine", sql=file_reading_sql('"read_text"', secret))
    result = runner.invoke(app, ["detect", "--data", str(dataset), "--queries", str(folder)])
    assert result.exit_code == 1, result.output
    assert "my-rule.sql" in result.output and "Permission Error" in result.output
    assert SECRET_TEXT not in result.output


def test_the_config_file_names_folders_relative_to_itself(runner: CliRunner, dataset: Path, tmp_path: Path) -> None:
    user_detection(tmp_path / "conf" / "mine")
    config = tmp_path / "conf" / "analyzer.toml"
    config.write_text('[detect]\nqueries = ["mine"]\n')
    result = runner.invoke(app, ["detect", "--data", str(dataset), "--config", str(config), "--format", "jsonl"])
    assert result.exit_code == 3, result.output
    assert "my-rule" in {json.loads(line)["detection_id"] for line in result.stdout.splitlines() if line.strip()}
    flag = user_detection(tmp_path / "flag", "flag-rule")  # the flag wins over the file
    result = runner.invoke(
        app, ["detect", "--data", str(dataset), "--config", str(config), "--queries", str(flag), "--format", "jsonl"]
    )
    ids = {json.loads(line)["detection_id"] for line in result.stdout.splitlines() if line.strip()}
    assert "flag-rule" in ids and "my-rule" not in ids


def test_an_existence_probe_of_events_is_not_a_first_read(tmp_path: Path) -> None:
    """``exists (select 1 from events ...)`` (as console-user-without-mfa asks whether the data reaches past a
    deadline) is not the read the selective-first-step lint is about; reading events unfiltered still is."""
    over_view = (
        "select null as severity, account_id, region, principal, user_name, source_ip, user_agent,\n"
        "    eventTime as first_seen, eventTime as last_seen, 1 as count, [eventID] as event_ids,\n"
        "    json_object('root_severity', $root_severity) as details\n"
        "from console_signins as s\n"
        "where exists (select 1 from events as later where later.eventTime >= s.eventTime + interval 1 hour)\n"
    )
    check_user_detections(load_catalogue(extra=[user_detection(tmp_path / "probe", sql=over_view)]))
    unfiltered = over_view.replace("from console_signins as s\n", "from console_signins as s, (select 1 from events)\n")
    with pytest.raises(CatalogueError, match="first read of events must filter"):
        check_user_detections(load_catalogue(extra=[user_detection(tmp_path / "read", sql=unfiltered)]))
