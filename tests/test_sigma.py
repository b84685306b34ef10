"""Sigma rules (fixtures/sigma) converted by analyzer.sigma and run by the engine on synthetic records:
a positive and near misses per rule, Sigma's matching semantics, hostile rules, and `detect --sigma`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sigma", reason="pySigma (the analyzer[sigma] extra) is not installed")

from analyzer.cli import app
from analyzer.detect import CatalogueError, load_catalogue, run_detections
from analyzer.detect.cases import events_connection
from analyzer.sigma import load_sigma_rules

from records import log_key, record, write_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sigma"
ACCT = "111122223333"


def rule_alerts(rule: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts one rule file raises on ``records`` (through the ingest path, on a sealed connection)."""
    loaded = load_sigma_rules([rule])
    assert not loaded.skipped, loaded.skipped
    (detection,) = loaded.detections
    catalogue = load_catalogue().with_detections([detection])
    con = events_connection(records)
    try:
        return run_detections(con, only=[detection.id], catalogue=catalogue).alerts.to_dicts()
    finally:
        con.close()


def root(**fields: Any) -> dict[str, Any]:
    identity = {"type": "Root", "principalId": ACCT, "arn": f"arn:aws:iam::{ACCT}:root", "accountId": ACCT}
    return record(1, userIdentity=identity, **fields)


def console_login(i: int, mfa: str, outcome: str) -> dict[str, Any]:
    return record(
        i,
        eventSource="signin.amazonaws.com",
        eventName="ConsoleLogin",
        eventType="AwsConsoleSignIn",
        additionalEventData={"MFAUsed": mfa, "LoginTo": "https://console.aws.amazon.com/"},
        responseElements={"ConsoleLogin": outcome},
        requestParameters=None,
    )


def task_definition(i: int, commands: list[list[str]], name: str = "RegisterTaskDefinition") -> dict[str, Any]:
    containers = [{"name": f"c{n}", "image": "busybox", "command": command} for n, command in enumerate(commands)]
    return record(
        i,
        eventSource="ecs.amazonaws.com",
        eventName=name,
        requestParameters={"family": "web", "containerDefinitions": containers},
    )


def admin_sets_password(i: int, caller: str, target: str, agent: str = "aws-cli/2.15.0") -> dict[str, Any]:
    identity = {
        "type": "IAMUser",
        "principalId": "AIDA1",
        "arn": f"arn:aws:iam::{ACCT}:user/{caller}",
        "accountId": ACCT,
        "userName": caller,
    }
    return record(
        i,
        eventSource="iam.amazonaws.com",
        eventName="UpdateLoginProfile",
        userIdentity=identity,
        userAgent=agent,
        requestParameters={"userName": target, "passwordResetRequired": True},
    )


def service_role_call(i: int, ip: str, agent: str) -> dict[str, Any]:
    identity = {
        "type": "AssumedRole",
        "principalId": "AROA1:x",
        "accountId": ACCT,
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/aws-service-role/backup/x",
    }
    return record(i, userIdentity=identity, sourceIPAddress=ip, userAgent=agent)


WITHOUT_EVENT_TYPE = {k: v for k, v in root().items() if k != "eventType"}

# (rule file, case, records, alerts expected)
CASES = [
    ("root_api_call.yml", "root calls an API", [root()], 1),
    # NULL-safe negation: no eventType at all is not an AwsServiceEvent (SQL's `not (NULL = x)` would drop it)
    ("root_api_call.yml", "root call without eventType still alerts", [WITHOUT_EVENT_TYPE], 1),
    ("root_api_call.yml", "near miss: an AWS service event for root", [root(eventType="AwsServiceEvent")], 0),
    ("root_api_call.yml", "near miss: an IAM user", [record(1)], 0),
    # the rule says 'no' and 'success': Sigma compares case-insensitively
    ("console_login_no_mfa.yml", "No MFA, Success", [console_login(1, "No", "Success")], 1),
    ("console_login_no_mfa.yml", "NO MFA, SUCCESS", [console_login(1, "NO", "SUCCESS")], 1),
    ("console_login_no_mfa.yml", "near miss: with MFA", [console_login(1, "Yes", "Success")], 0),
    ("console_login_no_mfa.yml", "near miss: failed", [console_login(1, "No", "Failure")], 0),
    (
        "ecs_task_reads_container_credentials.yml",
        "second container's command names the endpoint",
        [task_definition(1, [["nginx"], ["sh", "-c", "curl 169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]])],
        1,
    ),
    (
        "ecs_task_reads_container_credentials.yml",
        "near miss: commands without it",
        [task_definition(1, [["nginx"], ["sh", "-c", "echo AWS_CONTAINER"]])],
        0,
    ),
    (
        "ecs_task_reads_container_credentials.yml",
        "near miss: another event name",
        [task_definition(1, [["$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]], name="DescribeTaskDefinition")],
        0,
    ),
    ("flow_logs_deleted.yml", "flow logs deleted", [record(1, eventName="DeleteFlowLogs")], 1),
    (
        "flow_logs_deleted.yml",
        "near miss: the call failed",
        [record(1, eventName="DeleteFlowLogs", errorCode="UnauthorizedOperation")],
        0,
    ),
    ("login_profile_for_another_user.yml", "admin sets bob's password", [admin_sets_password(1, "admin", "bob")], 1),
    (
        "login_profile_for_another_user.yml",
        "near miss: Bob sets bob's (fieldref, any case)",
        [admin_sets_password(1, "Bob", "bob")],
        0,
    ),
    (
        "login_profile_for_another_user.yml",
        "near miss: from the console",
        [admin_sets_password(1, "admin", "bob", agent="AWS Internal")],
        0,
    ),
    (
        "bucket_versioning_suspended.yml",
        "versioning suspended",
        [
            record(
                1,
                eventSource="s3.amazonaws.com",
                eventName="PutBucketVersioning",
                requestParameters={"bucketName": "b", "VersioningConfiguration": {"Status": "Suspended"}},
            )
        ],
        1,
    ),
    (
        "bucket_versioning_suspended.yml",
        "near miss: versioning enabled",
        [
            record(
                1,
                eventSource="s3.amazonaws.com",
                eventName="PutBucketVersioning",
                requestParameters={"bucketName": "b", "VersioningConfiguration": {"Status": "Enabled"}},
            )
        ],
        0,
    ),
    (
        "assumed_role_session_from_range.yml",
        "service role from the range",
        [service_role_call(1, "203.0.113.9", "TestAgent")],
        1,
    ),
    (
        "assumed_role_session_from_range.yml",
        "near miss: |cased user agent",
        [service_role_call(1, "203.0.113.9", "testagent")],
        0,
    ),
    (
        "assumed_role_session_from_range.yml",
        "near miss: outside the range",
        [service_role_call(1, "198.51.100.9", "TestAgent")],
        0,
    ),
]


@pytest.mark.parametrize(("rule", "case", "records", "alerts"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_fixture_rule(rule: str, case: str, records: list[dict[str, Any]], alerts: int) -> None:
    got = rule_alerts(FIXTURES / rule, records)
    assert len(got) == alerts, got


def test_every_fixture_rule_has_a_positive_and_near_misses() -> None:
    rules = {c[0] for c in CASES}
    assert rules == {d.sql_path.name for d in load_sigma_rules([FIXTURES]).detections}
    for name in rules:
        assert any(c[3] > 0 for c in CASES if c[0] == name) and sum(c[3] == 0 for c in CASES if c[0] == name) >= 1


def test_alert_shape_and_attribution() -> None:
    (alert,) = rule_alerts(FIXTURES / "console_login_no_mfa.yml", [console_login(7, "No", "Success")])
    assert alert["detection_id"] == "sigma:e31c44c9-65f0-4bc3-8634-b988842d7d3b"
    assert alert["severity"] == "high" and alert["title"] == "Console sign-in that succeeded without MFA"
    assert alert["principal"] == f"arn:aws:iam::{ACCT}:user/alice" and alert["source_ip"] == "198.51.100.7"
    assert alert["event_ids"] == ["00000000-0000-0000-0000-000000000007"]
    details = json.loads(alert["details"])
    assert details["sigma_author"] == "analyzer project"  # the Detection Rule License asks matches to name it
    assert details["events"] == ["signin.amazonaws.com ConsoleLogin"]


def test_one_alert_per_principal_and_source_ip() -> None:
    records = [
        console_login(1, "No", "Success"),
        console_login(2, "No", "Success"),
        {**console_login(3, "No", "Success"), "sourceIPAddress": "192.0.2.3"},
    ]
    alerts = rule_alerts(FIXTURES / "console_login_no_mfa.yml", records)
    assert sorted((a["source_ip"], a["count"]) for a in alerts) == [("192.0.2.3", 1), ("198.51.100.7", 2)]


def test_event_source_and_name_keep_a_plain_equality() -> None:
    """eventSource/eventName are compared with = / IN (row-group pruning), so their case is CloudTrail's."""
    (detection,) = load_sigma_rules([FIXTURES / "ecs_task_reads_container_credentials.yml"]).detections
    assert 'e."eventSource" = $sigma_' in detection.sql
    assert 'e."eventName" in ($sigma_' in detection.sql
    assert 'lower(e."eventName")' not in detection.sql
    assert rule_alerts(FIXTURES / "flow_logs_deleted.yml", [record(1, eventName="deleteflowlogs")]) == []


def test_skipped_rules_say_why() -> None:
    skipped = {path.name: reason for path, reason in load_sigma_rules([FIXTURES]).skipped}
    assert "keyword search" in skipped["keyword_only.yml"]
    assert "not a CloudTrail rule" in skipped["not_cloudtrail.yml"]


RULE = """\
title: {title}
id: {id}
status: experimental
author: test
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        {field}: {value}
    condition: selection
level: low
"""


def write_rule(
    folder: Path,
    name: str,
    field: str,
    value: str,
    rule_id: str = "0b9e0d0e-7d2c-4a53-9d5f-1f1f1f1f1f1f",
    title: str = "test rule",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(RULE.format(title=title, id=rule_id, field=field, value=value))
    return path


def test_values_are_bound_not_pasted(tmp_path: Path) -> None:
    """A value with quotes, %, _ and SQL in it is matched literally (a bound parameter, LIKE-escaped)."""
    rule = write_rule(tmp_path, "hostile.yml", "userAgent|contains", '"50%_off\'); select 1; --"')
    (detection,) = load_sigma_rules([rule]).detections
    assert "select 1" not in detection.sql and "50%" not in detection.sql
    hit = record(1, userAgent="get 50%_off'); select 1; -- now")
    near = record(2, userAgent="get 50xxoff'); select 1; -- now")  # % and _ are not wildcards here
    alerts = rule_alerts(rule, [hit, near])
    assert [a["event_ids"] for a in alerts] == [["00000000-0000-0000-0000-000000000001"]]


def test_a_field_name_outside_cloudtrail_names_is_skipped(tmp_path: Path) -> None:
    rule = write_rule(tmp_path, "field.yml", '"userAgent\'--"', "x")
    ((path, reason),) = load_sigma_rules([rule]).skipped
    assert path == rule and "only CloudTrail-style names" in reason


def test_an_unknown_field_reads_extra_and_runs(tmp_path: Path) -> None:
    """A field the schema does not know is read from extra, where ingest keeps such fields."""
    rule = write_rule(tmp_path, "extra.yml", "customField", "found")
    assert len(rule_alerts(rule, [record(1, customField="FOUND"), record(2)])) == 1


def test_two_files_with_one_rule_id_are_an_error(tmp_path: Path) -> None:
    write_rule(tmp_path, "a.yml", "eventName", "X")
    write_rule(tmp_path, "b.yml", "eventName", "Y")
    with pytest.raises(CatalogueError, match=r"b\.yml: Sigma rule id .* is also the id of .*a\.yml"):
        load_sigma_rules([tmp_path])


def test_detect_sigma_end_to_end(runner: Any, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [console_login(1, "No", "Success"), record(2, eventName="DeleteFlowLogs")])
    data = tmp_path / "data"
    assert runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(data), "--quiet"]).exit_code == 0
    report = tmp_path / "report.json"
    result = runner.invoke(
        app, ["detect", "--data", str(data), "--sigma", str(FIXTURES), "--format", "json", "--output", str(report)]
    )
    assert result.exit_code == 3, result.output  # a high alert (the sign-in without MFA)
    alerts = json.loads(report.read_text())["alerts"]
    sigma = sorted(a["detection_id"] for a in alerts if a["detection_id"].startswith("sigma:"))
    assert sigma == ["sigma:e31c44c9-65f0-4bc3-8634-b988842d7d3b", "sigma:fd0804c4-9ebc-47e6-a8b1-0521d5168b3f"]
    assert "console-login-without-mfa" in {a["detection_id"] for a in alerts}  # the catalogue ran beside them
    assert "skipped" in result.output and "keyword_only.yml" in result.output
    assert "skipped 1 rule(s) whose log source is not aws/cloudtrail" in result.output  # one line, not one each
    assert "not_cloudtrail.yml" not in result.output


def test_detect_sigma_only_one_rule(runner: Any, tmp_path: Path) -> None:
    write_log(tmp_path / "in", log_key(), [console_login(1, "No", "Success")])
    data = tmp_path / "data"
    assert runner.invoke(app, ["ingest", str(tmp_path / "in"), "--data", str(data), "--quiet"]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "detect",
            "--data",
            str(data),
            "--sigma",
            str(FIXTURES / "flow_logs_deleted.yml"),
            "--only",
            "sigma:fd0804c4-9ebc-47e6-a8b1-0521d5168b3f",
            "--format",
            "jsonl",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ""
