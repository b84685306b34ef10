"""Conformance: peer-curated Panther cases and AWS's own documentation examples.

Panther cases test a rule's per-event predicate (its thresholds live in Panther's backend), so
each case asks "does our mapped detection select this record?". Threshold detections run with
every threshold at 1, which turns them into their per-event predicate. Where we differ on purpose
the case is listed in ``PANTHER_DIFFERS`` with the reason; a listed case that starts to agree
fails too, so the list cannot go stale.

Records without a usable ``eventTime`` (Panther's PasswordSpraying cases, LoginWithoutMFA case 7,
Root.Activity case 4 "redacted") cannot be placed in a dataset: the test injects
``2019-01-01T00:00:00Z``. Nothing else in a record is changed.

The AWS examples run through the whole catalogue one at a time (several share an eventID, which
deduplication would merge), and the set of detections that fire must be exactly the expected one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analyzer.detect import events_connection, load_catalogue, run_detections

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "conformance"
PANTHER = FIXTURES / "panther"
AWS_DOCS = FIXTURES / "aws-doc-examples"
INJECTED_TIME = "2019-01-01T00:00:00Z"

#: Panther rule → our detection, from ../shared/conformance/README.md.
PANTHER_MAPPING = {
    "AWS.Console.LoginWithoutMFA": "console-login-without-mfa",
    "AWS.Console.RootLogin": "root-console-login",
    "AWS.Console.RootLoginFailed": "console-login-failures",
    "AWS.Console.LoginFailed": "console-login-failures",
    "Standard.BruteForceByUser": "console-login-failures",
    "Standard.BruteForceByIP": "console-login-failures",
    "AWS.CloudTrail.PasswordSpraying": "console-brute-force",
    "AWS.Unsuccessful.MFA.attempt": "mfa-failure",
    "AWS.CloudTrail.Stopped": "cloudtrail-tampering",
    "AWS.CloudTrail.EventSelectorsDisabled": "cloudtrail-tampering",
    "AWS.Root.Activity": "root-activity",
    "AWS.CloudTrail.RootPasswordChanged": "root-credential-change",
    "AWS.CloudTrail.RootAccessKeyCreated": "root-credential-change",
    "AWS.CloudTrail.LoginProfileCreatedOrModified": "login-profile-changed",
    "AWS.Console.GetSigninToken.Abuse": "federation-token-without-mfa",
    "AWS.STS.GetSessionToken.Misuse": "federation-token-without-mfa",
    "AWS.CloudTrail.SecurityConfigurationChange": "cloudtrail-tampering",
    "AWS.IAM.CredentialsUpdated": "login-profile-changed",
}

#: Cases where we deliberately differ from Panther's expected result, with the reason.
PANTHER_DIFFERS = {
    "AWS.Console.LoginWithoutMFA__8": (
        "configuration-dependent: Panther suppresses it through a cache of newly created users "
        "(mocked check_account_age = True); we have no such state, the sign-in had no MFA"
    ),
    "AWS.Console.LoginWithoutMFA__11": (
        "configuration-dependent: Panther's ROLES_VIA_EXTERNAL_IDP flag says roles sign in through an external "
        "IdP; the record has no SamlProviderArn and no AWSReservedSSO_ role, so we report it (allowlist the role)"
    ),
    "AWS.Root.Activity__1": (
        "Panther skips CreateServiceLinkedRole; CIS counts every root call without invokedBy, and this one has none"
    ),
    "AWS.Root.Activity__5": (
        "a root console sign-in: root-activity excludes sign-in events because root-console-login reports them "
        "(checked below)"
    ),
    "AWS.CloudTrail.LoginProfileCreatedOrModified__1": (
        "Panther calls it self-service because the role session's name (alice) equals the target user name; a role "
        "session is not the IAM user alice, and anyone assuming the role picks the session name"
    ),
    "AWS.IAM.CredentialsUpdated__1": (
        "a user changing their own password (ChangePassword) is self-service: login-profile-changed reports console "
        "passwords set for another user, which is what an attacker with an admin session does"
    ),
    "AWS.Root.Activity__6": (
        "Panther skips read-only root calls; CIS counts any root usage, so include_read_only defaults to true"
    ),
}

#: Per-event predicate of the threshold detections: every threshold at 1.
PER_EVENT_PARAMS: dict[str, dict[str, Any]] = {
    "console-brute-force": {
        "ip_threshold": 1, "principal_threshold": 1, "root_threshold": 1, "spray_distinct_users": 1,
        "root_spray_accounts": 1,
    },
    "console-login-after-failures": {"threshold": 1},
}


def _placeable(record: dict[str, Any]) -> dict[str, Any]:
    """The record, with a fixed eventTime when it has none that can be read (see module doc)."""
    text = record.get("eventTime")
    try:
        datetime.fromisoformat(str(text))
    except ValueError:
        return {**record, "eventTime": INJECTED_TIME}
    return record


def _select(detection_id: str, record: dict[str, Any]) -> pl.DataFrame:
    con = events_connection([_placeable(record)])
    try:
        params = {detection_id: PER_EVENT_PARAMS.get(detection_id, {})}
        return run_detections(con, only=[detection_id], params=params).alerts
    finally:
        con.close()


def _panther_cases() -> list[Any]:
    cases = []
    for path in sorted(PANTHER.glob("*__*.json")):
        case = json.loads(path.read_text())
        cases.append(pytest.param(path.stem, case, id=f"{path.stem}: {case['name']}"))
    return cases


@pytest.mark.parametrize(("stem", "case"), _panther_cases())
def test_panther_case(stem: str, case: dict[str, Any]) -> None:
    detection_id = PANTHER_MAPPING[case["rule_id"]]
    selected = _select(detection_id, case["log"]).height > 0
    if stem in PANTHER_DIFFERS:
        assert selected != case["expected"], f"{stem} now agrees with Panther: remove it from PANTHER_DIFFERS"
    else:
        assert selected == case["expected"], f"{detection_id} {'selects' if selected else 'misses'} {stem}"


def test_panther_root_login_case_is_reported_by_root_console_login() -> None:
    case = json.loads((PANTHER / "AWS.Root.Activity__5.json").read_text())
    assert _select("root-console-login", case["log"]).height == 1


def test_every_copied_panther_rule_is_mapped_and_licensed() -> None:
    rules = {json.loads(p.read_text())["rule_id"] for p in PANTHER.glob("*__*.json")}
    assert rules == set(PANTHER_MAPPING)
    assert set(PANTHER_MAPPING.values()) <= set(load_catalogue())
    assert (PANTHER / "LICENSE.txt").is_file() and (PANTHER / "PROVENANCE.md").is_file()
    assert all(stem.split("__")[0] in PANTHER_MAPPING for stem in PANTHER_DIFFERS)


#: AWS example → the detections that must fire on it alone (nothing else may), with field checks.
AWS_EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "ct_signin__01__iam_user_successful_sign_in_without_mfa": {
        "console-login-without-mfa": {"severity": "high", "principal": "arn:aws:iam::111122223333:user/anaya"},
    },
    "ct_signin__02__iam_user_successful_sign_in_with_mfa": {},
    "ct_signin__03__iam_user_unsuccessful_sign_in": {
        "console-login-failures": {"principal": "anaya", "source_ip": "192.0.2.0"},
        "mfa-failure": {"principal": "anaya"},  # MFAUsed = Yes on a failure: the peers' "failed at MFA"
    },
    "ct_signin__04__iam_user_sign_in_process_checks_for_mfa_single_mfa_device_type": {},  # CheckMfa: not a result
    "ct_signin__05__iam_user_sign_in_process_checks_for_mfa_multiple_mfa_device_types": {},
    "ct_signin__06__root_user_successful_sign_in_without_mfa": {
        "console-login-without-mfa": {"severity": "critical"},
        "root-console-login": {"principal": "arn:aws:iam::111122223333:root"},
    },
    "ct_signin__07__root_user_successful_sign_in_with_mfa": {  # MFAUsed "YES": with MFA
        "root-console-login": {"principal": "arn:aws:iam::111122223333:root"},
    },
    "ct_signin__08__root_user_unsuccessful_sign_in": {"console-login-failures": {"severity": "medium"}},
    "ct_signin__09__root_user_mfa_changed": {
        "mfa-device-added": {"principal": "arn:aws:iam::111122223333:root"},
        "root-activity": {"source_ip": "192.0.2.0"},
        "sensitive-call-without-mfa": {"user_name": "root"},
    },
    # a root password change is a sign-in event: root-activity excludes those, root-credential-change reports it
    "ct_signin__10__root_user_password_changed": {
        "root-credential-change": {"severity": "critical", "principal": "arn:aws:iam::111122223333:root"},
    },
    "iam_guide__01__signin_failure_incorrect_user_name_hidden": {
        "console-login-failures": {"principal": None, "user_name": None, "source_ip": "192.0.2.101"},
    },
    "iam_guide__02__signin_failure_event": {
        "console-login-failures": {"principal": "arn:aws:iam::111122223333:user/JaneDoe"},
    },
    "iam_guide__03__console_session_api_call_getuserpolicy_mfaauthenticated_false": {},  # a read
    # Identity Center sign-in steps: successes, and a PASSWORD failure, are not MFA failures
    **{p.stem: {} for p in sorted(AWS_DOCS.glob("idc_signin__*.json"))},
    # ...but a sign-in that ended with a password alone, or enrolled its MFA device during sign-in, is reported
    "idc_signin__03__successful_userauthentication_password_only": {
        "identity-center-signin-without-mfa": {"severity": "medium", "principal": "user1", "source_ip": "203.0.113.0"},
    },
    "idc_signin__12__successful_userauthentication_password_mfa_registration_required": {
        "identity-center-signin-without-mfa": {"severity": "high", "principal": "user1"},
    },
}


@pytest.mark.parametrize("stem", sorted(p.stem for p in AWS_DOCS.glob("*.json")))
def test_aws_doc_example(stem: str) -> None:
    document = json.loads((AWS_DOCS / f"{stem}.json").read_text())
    records = document.get("Records", [document])
    con = events_connection(records)
    try:
        alerts = run_detections(con).alerts
    finally:
        con.close()
    expected = AWS_EXPECTED[stem]
    assert sorted(alerts["detection_id"].to_list()) == sorted(expected)
    for row in alerts.to_dicts():
        for key, value in expected[row["detection_id"]].items():
            assert row[key] == value, f"{row['detection_id']}.{key}"


def test_every_aws_example_has_an_expectation_and_a_license() -> None:
    assert set(AWS_EXPECTED) == {p.stem for p in AWS_DOCS.glob("*.json")}
    assert (AWS_DOCS / "LICENSE.md").is_file() and (AWS_DOCS / "PROVENANCE.md").is_file()


# --- real detonations: Stratus Red Team's captured CloudTrail logs (fixtures/conformance/real) ---

STRATUS = FIXTURES / "real" / "stratus-detonation-logs" / "docs" / "detonation-logs"

#: Technique → the detections that fire on its logs alone (exactly; every other technique raises nothing).
#: The misses are outside the catalogue's identity/sign-in/logging scope (EC2, SSM, Lambda, secrets, sharing),
#: or invisible in these anonymised logs (ec2-steal-instance-credentials: one source IP for the stolen session).
STRATUS_EXPECTED: dict[str, set[str]] = {
    "aws.defense-evasion.cloudtrail-delete": {"cloudtrail-tampering"},
    "aws.defense-evasion.cloudtrail-event-selectors": {"cloudtrail-tampering"},
    "aws.defense-evasion.cloudtrail-stop": {"cloudtrail-tampering"},
    "aws.defense-evasion.dns-delete-logs": {"logging-redirected"},
    "aws.defense-evasion.vpc-remove-flow-logs": {"logging-redirected"},
    "aws.initial-access.console-login-without-mfa": {"console-login-without-mfa"},
    "aws.persistence.iam-backdoor-user": {"access-key-for-other-user"},
    "aws.persistence.iam-create-admin-user": {"access-key-for-other-user"},
    "aws.persistence.iam-create-user-login-profile": {"login-profile-changed"},
    "aws.persistence.sts-federation-token": {"federation-token-without-mfa"},
    "aws.privilege-escalation.iam-update-user-login-profile": {"login-profile-changed"},
}


@pytest.mark.slow
@pytest.mark.parametrize("technique", sorted(p.stem for p in STRATUS.glob("*.json")))
def test_stratus_detonation(technique: str) -> None:
    con = events_connection(json.loads((STRATUS / f"{technique}.json").read_text()))
    try:
        fired = set(run_detections(con).alerts["detection_id"].to_list())
    finally:
        con.close()
    assert fired == STRATUS_EXPECTED.get(technique, set())


def test_invictus_capture_shows_the_login_profile_takeover_correlation() -> None:
    """Invictus IR's real lab capture: bert-jan creates a login profile for a new user, who then signs in (no MFA)
    from bert-jan's own IP: login-profile-changed is critical, with the change and the sign-in as its evidence."""
    records = [r for p in sorted((FIXTURES / "real" / "invictus-aws-dataset").rglob("*.json"))
               for r in json.loads(p.read_text())["Records"]]
    con = events_connection(records)
    try:
        alerts = run_detections(con, only=["login-profile-changed"]).alerts
    finally:
        con.close()
    critical = alerts.filter(pl.col("severity") == "critical").to_dicts()
    assert [(a["principal"], a["source_ip"], a["event_ids"]) for a in critical] == [(
        "arn:aws:iam::123837392027:user/bert-jan", "192.168.10.20",
        ["1170c908-ce8d-4c6f-bc65-cf43aae5235b", "70e5932e-9022-4b38-837e-ca10dad94eb7"],
    )]
