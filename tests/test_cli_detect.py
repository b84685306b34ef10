"""`analyzer detect` end to end: log files → ingest → detections → reports and exit codes."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer import connect, ingest_objects
from analyzer.cli import app
from analyzer.sources.local import walk

from records import record, write_log

ACCT = "111122223333"
NO_MFA_ID = "0badc0de-0000-4000-8000-000000000001"


def detect(runner: CliRunner, data: Path, *args: str) -> Any:
    return runner.invoke(app, ["detect", "--data", str(data), *args])


def jsonl(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def key(day: str, minute: int = 0, *, org: bool = False, suffix: str = "AbCdEfGh12345678") -> str:
    """An object key in CloudTrail's layout; ``day`` is the delivery folder, ``YYYY-MM-DD``."""
    y, m, d = day.split("-")
    prefix = f"AWSLogs/o-exampleorg1/{ACCT}" if org else f"AWSLogs/{ACCT}"
    name = f"{ACCT}_CloudTrail_us-east-1_{y}{m}{d}T00{minute:02d}Z_{suffix}.json.gz"
    return f"{prefix}/CloudTrail/us-east-1/{y}/{m}/{d}/{name}"


def user(name: str, *, mfa: str | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "type": "IAMUser", "principalId": f"AIDA{name.upper():X<17}"[:21], "accountId": ACCT,
        "arn": f"arn:aws:iam::{ACCT}:user/{name}", "userName": name,
    }
    if mfa is not None:
        identity |= {"accessKeyId": "ASIAEXAMPLE", "sessionContext": {
            "attributes": {"creationDate": "2026-11-20T08:00:00Z", "mfaAuthenticated": mfa}}}
    return identity


def sso(name: str) -> dict[str, Any]:
    role = "AWSReservedSSO_AdministratorAccess_5d3e2f1a0b9c8d7e"
    return {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{name}@example.com", "accountId": ACCT,
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/{role}/{name}@example.com", "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "accountId": ACCT, "userName": role,
                              "arn": f"arn:aws:iam::{ACCT}:role/aws-reserved/sso.amazonaws.com/{role}"},
            "attributes": {"creationDate": "2026-11-20T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def login(i: int | str, time: str, identity: dict[str, Any], *, mfa: str = "Yes", outcome: str = "Success",
          ip: str = "198.51.100.20", **extra: Any) -> dict[str, Any]:
    event_id = i if isinstance(i, str) else f"00000000-0000-4000-8000-{i:012d}"
    fields: dict[str, Any] = {
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "eventType": "AwsConsoleSignIn",
        "userIdentity": identity, "sourceIPAddress": ip, "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        "requestParameters": None, "responseElements": {"ConsoleLogin": outcome}, "readOnly": False,
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                "MFAUsed": mfa} | extra,
    }
    if outcome == "Failure":
        fields["errorMessage"] = "Failed authentication"
    return record(0, time=time, **fields) | {"eventID": event_id}


def benign_records(n: int = 4000, seed: int = 20261120) -> list[dict[str, Any]]:
    """Ordinary activity: API calls by roles and MFA sessions, SSO/SAML/MFA sign-ins, Identity Center."""
    rng = random.Random(seed)
    people = ["alice", "bob", "carol", "dave", "erin"]
    calls = [
        ("ec2.amazonaws.com", "DescribeInstances", True), ("s3.amazonaws.com", "ListBuckets", True),
        ("iam.amazonaws.com", "ListRoles", True), ("sts.amazonaws.com", "GetCallerIdentity", True),
        ("kms.amazonaws.com", "Decrypt", True), ("lambda.amazonaws.com", "ListFunctions20150331", True),
        ("cloudtrail.amazonaws.com", "DescribeTrails", True), ("cloudtrail.amazonaws.com", "LookupEvents", True),
        ("ec2.amazonaws.com", "RunInstances", False), ("iam.amazonaws.com", "CreateRole", False),
        ("iam.amazonaws.com", "AttachRolePolicy", False), ("sts.amazonaws.com", "AssumeRole", False),
        ("logs.amazonaws.com", "CreateLogStream", False), ("dynamodb.amazonaws.com", "PutItem", False),
    ]
    out: list[dict[str, Any]] = []
    for i in range(n):
        day, hour, minute, second = rng.randrange(18, 23), rng.randrange(24), rng.randrange(60), rng.randrange(60)
        when = f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
        person = rng.choice(people)
        kind = rng.random()
        if kind < 0.03:  # an SSO (IAM Identity Center) console sign-in: MFAUsed is always No
            out.append(login(i, when, sso(person), mfa="No"))
        elif kind < 0.05:  # a SAML console sign-in
            out.append(login(i, when, sso(person), mfa="No",
                             SamlProviderArn=f"arn:aws:iam::{ACCT}:saml-provider/Okta"))
        elif kind < 0.08:  # an IAM user signs in with MFA (AWS writes Yes, and YES for root-style records)
            out.append(login(i, when, user(person), mfa=rng.choice(["Yes", "YES", "yes"])))
        elif kind < 0.09:  # Identity Center sign-in steps, all successful, with TOTP
            name = rng.choice(["CredentialChallenge", "CredentialVerification", "UserAuthentication"])
            out.append(record(i, time=when, eventSource="signin.amazonaws.com", eventName=name,
                              eventType="AwsServiceEvent", readOnly=False, requestParameters=None,
                              userIdentity={"type": "IdentityCenterUser", "accountId": ACCT, "onBehalfOf": {
                                  "userId": f"9067-{person}",
                                  "identityStoreArn": "arn:aws:identitystore::1:identitystore/d-1"}},
                              serviceEventDetails={name: "Success"},
                              additionalEventData={"AuthWorkflowID": f"wf-{i}", "CredentialType": "TOTP"}))
        else:  # an API call by an application role, an SSO session, or an IAM user's MFA session
            source, name, read_only = rng.choice(calls)
            identity = rng.choice([sso(person), user(person, mfa="true"), {
                "type": "AssumedRole", "principalId": "AROAAPP:i-0abc", "accountId": ACCT, "accessKeyId": "ASIAAPP",
                "arn": f"arn:aws:sts::{ACCT}:assumed-role/orders-app-ec2/i-0abc",
                "sessionContext": {"attributes": {"creationDate": "2026-11-20T08:00:00Z",
                                                  "mfaAuthenticated": "false"}}}])
            address = f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}"
            out.append(record(i, time=when, eventSource=source, eventName=name, readOnly=read_only,
                              userIdentity=identity, sourceIPAddress=address))
    return sorted(out, key=lambda r: r["eventTime"])


def dataset(tmp_path: Path, files: dict[str, list[dict[str, Any]]]) -> Path:
    for name, records in files.items():
        write_log(tmp_path / "in", name, records)
    data = tmp_path / "data"
    stats = ingest_objects(walk([tmp_path / "in"]), data, workers=1)
    assert stats.failed == 0 and stats.quarantined == 0
    return data


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = benign_records()
    chunks = {key("2026-11-20", i % 60, suffix=f"Benign{i:010d}"): records[i * 200:(i + 1) * 200] for i in range(20)}
    return dataset(tmp_path_factory.mktemp("benign"), chunks)


@pytest.fixture(scope="module")
def one_alert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One IAM user sign-in without MFA (high), next to benign sign-ins."""
    files = {key("2026-11-20"): [
        login(NO_MFA_ID, "2026-11-20T10:00:00Z", user("mallory"), mfa="No", ip="203.0.113.66"),
        login(2, "2026-11-20T11:00:00Z", user("alice"), mfa="Yes"),
        login(3, "2026-11-20T12:00:00Z", sso("bob"), mfa="No"),
    ]}
    return dataset(tmp_path_factory.mktemp("one-alert"), files)


# --- exit codes ----------------------------------------------------------------------------------


def test_findings_exit_3(runner: CliRunner, one_alert: Path) -> None:
    result = detect(runner, one_alert)
    assert result.exit_code == 3, result.output


def test_findings_below_fail_on_exit_0(runner: CliRunner, one_alert: Path) -> None:
    result = detect(runner, one_alert, "--fail-on", "critical")
    assert result.exit_code == 0, result.output


def test_fail_on_from_config(runner: CliRunner, one_alert: Path, tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[detect]\nfail_on = "critical"\n')
    assert detect(runner, one_alert, "--config", str(tmp_path / "a.toml")).exit_code == 0


def test_a_window_after_the_data_is_a_warning_not_an_all_clear(runner: CliRunner, one_alert: Path) -> None:
    """Issue 17: "No alerts." over no data exited 0; it is a warning naming where the data ends, exit 5."""
    result = detect(runner, one_alert, "--since", "2026-11-21", "--format", "jsonl")
    assert result.exit_code == 5, result.output
    assert result.stdout == ""
    assert "warning: no events in the window 2026-11-21T00:00Z → end of data: the data ends 2026-11-20T12:00Z" \
        in result.stderr


@pytest.mark.parametrize("args", [
    ["--only", "no-such-detection"],
    ["--param", "console-brute-force"],
    ["--param", "console-brute-force.no_such_param=3"],
    ["--since", "last tuesday"],
    ["--since", "2026-11-21", "--until", "2026-11-20"],
    ["--format", "xml"],
    ["--fail-on", "severe"],
])
def test_usage_errors_exit_2(runner: CliRunner, one_alert: Path, args: list[str]) -> None:
    result = detect(runner, one_alert, *args)
    assert result.exit_code == 2, result.output


def test_missing_dataset_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    result = detect(runner, tmp_path / "nope")
    assert result.exit_code == 1 and "no analyzer dataset" in result.output and "Traceback" not in result.output


def test_missing_config_exits_1(runner: CliRunner, one_alert: Path, tmp_path: Path) -> None:
    assert detect(runner, one_alert, "--config", str(tmp_path / "missing.toml")).exit_code == 1


# --- output --------------------------------------------------------------------------------------


def test_jsonl_alert_is_exact(runner: CliRunner, one_alert: Path) -> None:
    [alert] = jsonl(detect(runner, one_alert, "--format", "jsonl"))
    assert alert["detection_id"] == "console-login-without-mfa" and alert["severity"] == "high"
    assert (alert["principal"], alert["user_name"]) == (f"arn:aws:iam::{ACCT}:user/mallory", "mallory")
    assert (alert["source_ip"], alert["count"], alert["event_ids"]) == ("203.0.113.66", 1, [NO_MFA_ID])
    assert (alert["first_seen"], alert["account_id"]) == ("2026-11-20T10:00:00Z", ACCT)


def test_table_summary_counts_suppressed(runner: CliRunner, one_alert: Path, tmp_path: Path) -> None:
    (tmp_path / "allow.toml").write_text('[allowlist]\nprincipals = ["mallory"]\n')
    result = detect(runner, one_alert, "--config", str(tmp_path / "allow.toml"))
    assert result.exit_code == 0, result.output
    assert "0 alert(s)" in result.stdout and "1 suppressed by allowlists" in result.stdout


def test_table_shows_mfa_coverage(runner: CliRunner, one_alert: Path) -> None:
    text = " ".join(detect(runner, one_alert).stdout.split())
    assert "MFA coverage" in text and f"arn:aws:iam::{ACCT}:user/mallory 0 1 0 0 1" in text


def test_quiet_table_prints_alerts_only(runner: CliRunner, one_alert: Path) -> None:
    result = detect(runner, one_alert, "--quiet")
    assert "Alerts (1)" in result.stdout and "MFA coverage" not in result.stdout and result.stderr == ""


def test_output_file_written_atomically(runner: CliRunner, one_alert: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    result = detect(runner, one_alert, "--format", "html", "--output", str(target))
    assert result.exit_code == 3 and result.stdout == ""
    assert target.read_text().startswith("<!doctype html>") and list(tmp_path.glob(".report.html.*")) == []
    assert "report written to" in result.stderr and "1 alert(s) (1 high)" in result.stderr


def test_output_into_missing_directory_exits_1(runner: CliRunner, one_alert: Path, tmp_path: Path) -> None:
    result = detect(runner, one_alert, "--format", "json", "--output", str(tmp_path / "no" / "r.json"))
    assert result.exit_code == 1 and "cannot write the report" in result.output


def test_json_report_has_summary(runner: CliRunner, one_alert: Path) -> None:
    document = json.loads(detect(runner, one_alert, "--format", "json").stdout)
    assert document["summary"]["alerts"] == 1 and document["detections"]["console-login-without-mfa"] == 1
    coverage = {row["principal"].rsplit("/", 1)[-1]: row for row in document["summary"]["mfa_coverage"]}
    assert [(name, row["with_mfa"], row["without_mfa"], row["federated"]) for name, row in coverage.items()] == [
        ("mallory", 0, 1, 0), ("alice", 1, 0, 0), ("bob@example.com", 0, 0, 1)]


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_document_formats_name_the_principal(runner: CliRunner, one_alert: Path, fmt: str) -> None:
    assert "user/mallory" in detect(runner, one_alert, "--format", fmt).stdout


def test_only_runs_the_named_detection(runner: CliRunner, one_alert: Path) -> None:
    document = json.loads(detect(runner, one_alert, "--format", "json", "--only", "root-activity").stdout)
    assert list(document["detections"]) == ["root-activity"] and document["alerts"] == []


def test_param_override_is_applied(runner: CliRunner, one_alert: Path) -> None:
    args = ["--format", "json", "--only", "console-login-without-mfa", "--param",
            "console-login-without-mfa.include_federated=true"]
    document = json.loads(detect(runner, one_alert, *args).stdout)
    assert document["parameters"]["console-login-without-mfa"]["include_federated"] is True
    assert len(document["alerts"]) == 2  # bob's SSO sign-in now counts too


# --- what the data must and must not raise ------------------------------------------------------


@pytest.mark.slow
def test_benign_corpus_raises_nothing_at_or_above_medium(runner: CliRunner, benign: Path) -> None:
    result = detect(runner, benign, "--format", "jsonl", "--fail-on", "medium")
    assert result.exit_code == 0, [(a["detection_id"], a["principal"], a["source_ip"]) for a in jsonl(result)]


@pytest.mark.slow
def test_benign_corpus_has_thousands_of_events(benign: Path) -> None:
    con = connect(benign)
    assert con.execute("select count(*), count(distinct eventName) from events").fetchone() == (4000, 18)


def test_duplicate_delivery_yields_one_alert(runner: CliRunner, tmp_path: Path) -> None:
    event = login(NO_MFA_ID, "2026-11-20T10:00:00Z", user("mallory"), mfa="No")
    data = dataset(tmp_path, {key("2026-11-20"): [event], key("2026-11-20", org=True): [event]})
    [alert] = jsonl(detect(runner, data, "--format", "jsonl"))
    assert (alert["count"], alert["event_ids"]) == (1, [NO_MFA_ID])


def test_sign_in_before_midnight_in_next_days_folder_is_in_its_own_day(runner: CliRunner, tmp_path: Path) -> None:
    event = login(NO_MFA_ID, "2026-11-20T23:59:59Z", user("mallory"), mfa="No")
    data = dataset(tmp_path, {key("2026-11-21", 5): [event]})
    alerts = jsonl(detect(runner, data, "--format", "jsonl", "--since", "2026-11-20", "--until", "2026-11-21"))
    assert [(a["detection_id"], a["first_seen"]) for a in alerts] == [
        ("console-login-without-mfa", "2026-11-20T23:59:59Z")]


def test_sign_in_before_midnight_is_not_in_the_next_day(runner: CliRunner, tmp_path: Path) -> None:
    event = login(NO_MFA_ID, "2026-11-20T23:59:59Z", user("mallory"), mfa="No")
    data = dataset(tmp_path, {key("2026-11-21", 5): [event]})
    assert jsonl(detect(runner, data, "--format", "jsonl", "--since", "2026-11-21", "--until", "2026-11-22")) == []


# --- the catalogue commands ---------------------------------------------------------------------


def test_detections_lists_the_catalogue(runner: CliRunner) -> None:
    result = runner.invoke(app, ["detections"])
    assert result.exit_code == 0, result.output
    assert "console-login-without-mfa" in result.output and "cloudtrail-tampering" in result.output


def test_detections_json_has_metadata(runner: CliRunner) -> None:
    items = json.loads(runner.invoke(app, ["detections", "--format", "json"]).stdout)
    assert len(items) >= 21 and all(item["attack"] and item["false_positives"] for item in items)


def test_detections_show_prints_sql(runner: CliRunner) -> None:
    result = runner.invoke(app, ["detections", "show", "root-console-login"])
    assert result.exit_code == 0, result.output
    assert "from console_signins" in result.stdout and "severity: high" in result.stdout


def test_detections_show_unknown_id_exits_2(runner: CliRunner) -> None:
    assert runner.invoke(app, ["detections", "show", "nope"]).exit_code == 2


# --- the fixture corpus (fixtures/SCENARIOS.md) ---------------------------------------------------

ROOT = f"arn:aws:iam::{ACCT}:root"
USER = f"arn:aws:iam::{ACCT}:user/"
#: (detection, severity, principal, source IP, count, scenario eventIDs as SSSS-KK), as SCENARIOS.md lists them.
FIXTURE_ALERTS = sorted([
    ("console-login-without-mfa", "critical", ROOT, "203.0.113.50", 1, "0003-01"),
    ("console-login-without-mfa", "high", USER + "alice", "203.0.113.10", 1, "0001-01"),
    ("console-login-without-mfa", "high", USER + "victor", "198.51.100.23", 1, "0010-13"),
    ("console-login-without-mfa", "high", "arn:aws:iam::444455556666:user/ivan", "198.51.100.160", 1, "0033-01"),
    ("console-login-without-mfa", "high", USER + "greg", "203.0.113.88", 1, "0030-01"),
    ("console-login-without-mfa", "high", USER + "henry", "192.0.2.77", 1, "0031-01"),
    ("root-console-login", "high", ROOT, "203.0.113.50", 1, "0003-01"),
    ("root-console-login", "high", ROOT, "198.51.100.5", 1, "0004-01"),
    ("root-activity", "high", ROOT, "203.0.113.50", 1, "0023-01"),
    ("root-activity", "high", ROOT, "198.51.100.5", 4, "0018-01 0018-02 0018-03 0018-04"),
    ("console-login-failures", "low", "victor", "198.51.100.23", 12, " ".join(f"0010-{k:02d}" for k in range(1, 13))),
    ("console-login-failures", "low", USER + "dave", "192.0.2.60", 1, "0008-01"),
    ("console-login-failures", "low", "frank", "192.0.2.61", 1, "0013-01"),
    *[("console-login-failures", "low", name, "192.0.2.200", 1, f"0011-{k:02d}")
      for k, name in enumerate(["admin", "ops", "deploy", "backup", "jenkins", "test"], 1)],
    ("console-login-failures", "low", None, "192.0.2.101", 3, "0009-01 0009-02 0009-03"),
    ("console-login-failures", "low", None, "192.0.2.102", 3, "0009-04 0009-05 0009-06"),
    ("console-login-failures", "low", None, "192.0.2.103", 2, "0009-07 0009-08"),
    ("console-login-failures", "low", None, "192.0.2.104", 2, "0009-09 0009-10"),
    ("console-login-failures", "medium", ROOT, "198.51.100.99", 5, " ".join(f"0012-{k:02d}" for k in range(1, 6))),
    ("console-login-failures", "low", "trent", "203.0.113.66", 1, "0032-01"),
    ("console-login-failures", "low", "eve\x1b[31mADMIN\x1b[0m", "203.0.113.66", 1, "0032-02"),
    ("console-login-failures", "low", USER + "erin", "198.51.100.77", 6,
     " ".join(f"0030-{k:02d}" for k in range(2, 8))),
    # victor's ≥10 by IP and ≥10 by principal come as one alert listing both conditions
    ("console-brute-force", "high", "victor", "198.51.100.23", 12, " ".join(f"0010-{k:02d}" for k in range(1, 13))),
    ("console-brute-force", "high", None, "192.0.2.200", 6, " ".join(f"0011-{k:02d}" for k in range(1, 7))),
    ("console-brute-force", "high", ROOT, "198.51.100.99", 5, " ".join(f"0012-{k:02d}" for k in range(1, 6))),
    ("console-login-after-failures", "critical", USER + "victor", "198.51.100.23", 13,
     " ".join(f"0010-{k:02d}" for k in range(1, 14))),
    ("mfa-failure", "high", "frank", "192.0.2.61", 1, "0013-01"),
    ("mfa-failure", "high", "c4f8a1d2-6071-70e9-2b3c-5d6e7f8091a2", "198.51.100.150", 1, "0015-04"),
    ("mfa-device-removed", "high", USER + "carol", "198.51.100.31", 1, "0017-03"),
    ("mfa-device-removed", "high", USER + "carol", "198.51.100.31", 1, "0017-04"),
    ("mfa-device-removed", "critical", ROOT, "198.51.100.5", 1, "0018-01"),
    ("mfa-device-removed", "critical", ROOT, "198.51.100.5", 1, "0018-02"),
    *[("mfa-device-added", "medium", USER + "carol", "198.51.100.31", 1, f"0017-0{k}") for k in (5, 6, 7)],
    *[("mfa-device-added", "medium", ROOT, "198.51.100.5", 1, f"0018-0{k}") for k in (3, 4)],
    ("sensitive-call-without-mfa", "medium", USER + "alice", "203.0.113.10", 2, "0020-04 0020-05"),
    ("sensitive-call-without-mfa", "medium", ROOT, "203.0.113.50", 1, "0023-01"),
    *[("cloudtrail-tampering", "high", f"arn:aws:sts::{ACCT}:assumed-role/ops-automation/nightly-cleanup",
       "198.51.100.200", 1, f"0026-0{k}") for k in (1, 2)],
    *[("cloudtrail-tampering", "high", "arn:aws:sts::444455556666:assumed-role/OrganizationAccountAccessRole/"
       "incident-sim", "198.51.100.162", 1, f"0028-0{k}") for k in (1, 2)],
    # catalogue v2 (issue 12)
    ("root-credential-change", "critical", ROOT, "203.0.113.50", 1, "0023-01"),
    ("access-key-for-other-user", "critical", ROOT, "203.0.113.50", 1, "0023-01"),
    ("access-key-for-other-user", "high", USER + "ci-bot", "192.0.2.80", 1, "0022-01"),
    ("logging-redirected", "high", "arn:aws:sts::444455556666:assumed-role/OrganizationAccountAccessRole/incident-sim",
     "198.51.100.162", 1, "0028-01"),
], key=str)


def short(event_id: str) -> str:
    """``c0de0010-0000-4000-8000-000000000013`` → ``0010-13`` (the SCENARIOS.md notation)."""
    return f"{event_id[4:8]}-{event_id[-2:]}" if event_id.startswith("c0de") else event_id


def summary_of(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(((a["detection_id"], a["severity"], a["principal"], a["source_ip"], a["count"],
                    " ".join(short(e) for e in a["event_ids"])) for a in alerts), key=str)


@pytest.fixture(scope="module")
def fixture_alerts(fixtures_dataset: Path) -> list[dict[str, Any]]:
    result = detect(CliRunner(), fixtures_dataset, "--format", "jsonl")
    assert result.exit_code == 3, result.output
    return jsonl(result)


@pytest.mark.slow
def test_fixture_alerts_are_exactly_the_scenarios(fixture_alerts: list[dict[str, Any]]) -> None:
    assert summary_of(fixture_alerts) == FIXTURE_ALERTS


@pytest.mark.parametrize("detection, records", [
    ("console-login-without-mfa", 6), ("root-console-login", 2), ("root-activity", 5),
    ("console-login-failures", 43), ("console-login-after-failures", 13), ("mfa-failure", 2),
    ("mfa-device-removed", 4), ("mfa-device-added", 5), ("sensitive-call-without-mfa", 3),
    ("cloudtrail-tampering", 4),
])
@pytest.mark.slow
def test_fixture_totals_match_scenarios(fixture_alerts: list[dict[str, Any]], detection: str, records: int) -> None:
    assert sum(a["count"] for a in fixture_alerts if a["detection_id"] == detection) == records


@pytest.mark.slow
def test_fixture_duplicate_delivery_counts_once(fixture_alerts: list[dict[str, Any]]) -> None:
    greg = [a for a in fixture_alerts if a["user_name"] == "greg"]
    erin = [a for a in fixture_alerts if a["user_name"] == "erin"]
    assert [a["count"] for a in greg] == [1] and [(a["detection_id"], a["count"]) for a in erin] == [
        ("console-login-failures", 6)]


@pytest.mark.slow
def test_fixture_federated_and_mfa_sign_ins_raise_nothing(fixture_alerts: list[dict[str, Any]]) -> None:
    quiet = ("kim@example.com", "maria@example.com", "legacy-ops", "bob", "judy", "ci-bot", "oscar")
    loud = [a for a in fixture_alerts if any(q in (a["principal"] or "") for q in quiet)]
    # ci-bot's sign-in and MFA are fine; the key it creates for deploy-bot (scenario 22) is another matter
    assert [(a["detection_id"], a["user_name"]) for a in loud] == [("access-key-for-other-user", "ci-bot")]


@pytest.mark.slow
def test_fixture_late_sign_in_found_in_its_own_day(runner: CliRunner, fixtures_dataset: Path) -> None:
    args = ["--format", "jsonl", "--only", "console-login-without-mfa", "--since", "2026-11-20T12:00:00Z",
            "--until", "2026-11-21"]
    assert [(a["user_name"], a["first_seen"]) for a in jsonl(detect(runner, fixtures_dataset, *args))] == [
        ("ivan", "2026-11-20T12:31:00Z"), ("greg", "2026-11-20T18:26:10Z"), ("henry", "2026-11-20T23:59:59Z")]


@pytest.mark.slow
def test_fixture_next_day_window_excludes_late_sign_in(runner: CliRunner, fixtures_dataset: Path) -> None:
    args = ["-f", "jsonl", "--only", "console-login-without-mfa", "--since", "2026-11-21", "--until", "2026-11-22"]
    result = detect(runner, fixtures_dataset, *args)
    assert result.exit_code == 0 and jsonl(result) == []


@pytest.mark.slow
def test_fixture_low_and_medium_findings_pass_fail_on_high(runner: CliRunner, fixtures_dataset: Path) -> None:
    assert detect(runner, fixtures_dataset, "--only", "console-login-failures", "--quiet").exit_code == 0
    assert detect(runner, fixtures_dataset, "--only", "console-login-failures", "--fail-on", "medium").exit_code == 3


@pytest.mark.slow
def test_fixture_html_escapes_script_user_agent(runner: CliRunner, fixtures_dataset: Path) -> None:
    html = detect(runner, fixtures_dataset, "--format", "html").stdout
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.slow
def test_fixture_markdown_escapes_script_user_agent(runner: CliRunner, fixtures_dataset: Path) -> None:
    markdown = detect(runner, fixtures_dataset, "--format", "markdown").stdout
    assert "<script>" not in markdown and "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


@pytest.mark.slow
def test_fixture_table_strips_ansi_user_name(runner: CliRunner, fixtures_dataset: Path) -> None:
    table = detect(runner, fixtures_dataset, "--only", "console-login-failures").stdout
    assert "\x1b" not in table and "eveADMIN" in table


@pytest.mark.slow
def test_fixture_mfa_coverage(runner: CliRunner, fixtures_dataset: Path) -> None:
    coverage = json.loads(detect(runner, fixtures_dataset, "--format", "json").stdout)["summary"]["mfa_coverage"]
    rows = {re.split("[/:]", row["principal"])[-1]: (row["with_mfa"], row["without_mfa"], row["federated"],
                                                  row["unknown"]) for row in coverage}
    assert rows["root"] == (1, 1, 0, 0) and rows["alice"] == (0, 1, 0, 0) and rows["bob"] == (1, 0, 0, 0)
    assert rows["kim@example.com"] == rows["maria@example.com"] == (0, 0, 1, 0) and rows["legacy-ops"] == (0, 0, 0, 1)
