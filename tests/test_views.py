"""The investigation views and macros: `signins`, the JSON helpers, `principal_timeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from analyzer import connect, ingest_objects
from analyzer.sources.local import walk
from analyzer.store.views import MACROS, VIEWS, install_views

from records import log_key, record, write_log

ALICE = "arn:aws:iam::111122223333:user/alice"
ROOT = "arn:aws:iam::111122223333:root"
ADMIN_ROLE = "arn:aws:iam::111122223333:role/Admin"


def signin(i: int, time: str, *, outcome: str = "Success", mfa: str | None = "No", **fields: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"LoginTo": "https://console.aws.amazon.com/", "MobileVersion": "No"}
    if mfa is not None:
        extra["MFAUsed"] = mfa
    base = {
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "eventType": "AwsConsoleSignIn",
        "requestParameters": None,
        "responseElements": {"ConsoleLogin": outcome},
        "additionalEventData": extra,
        "readOnly": False,
    }
    base.update(fields)
    return record(i, time=time, **base)


def identity_center(i: int, time: str, step: str, credential: str, *, outcome: str = "Success") -> dict[str, Any]:
    return record(
        i,
        time=time,
        eventSource="signin.amazonaws.com",
        eventName=step,
        eventType="AwsServiceEvent",
        userIdentity={
            "type": "IdentityCenterUser",
            "accountId": "111122223333",
            "onBehalfOf": {"userId": "idc-user-1", "identityStoreArn": "arn:aws:identitystore::111122223333:d-1"},
        },
        requestParameters=None,
        additionalEventData={"AuthWorkflowID": "wf-1", "CredentialType": credential},
        serviceEventDetails={step: outcome},
    )


def records() -> list[dict[str, Any]]:
    assumed = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:alice",
        "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": ADMIN_ROLE, "userName": "Admin"},
            "attributes": {"mfaAuthenticated": "true", "creationDate": "2026-11-20T10:10:00Z"},
        },
    }
    sso = dict(
        assumed,
        arn="arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/bob",
    )
    root = {"type": "Root", "principalId": "111122223333", "arn": ROOT, "accountId": "111122223333"}
    hidden = {"type": "IAMUser", "accountId": "111122223333", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"}
    return [
        signin(1, "2026-11-20T10:00:00Z", mfa="No"),
        signin(2, "2026-11-20T10:01:00Z", mfa="YES", userIdentity=root),
        signin(3, "2026-11-20T10:02:00Z", mfa=None, additionalEventData=None),
        signin(
            4, "2026-11-20T10:03:00Z", outcome="Failure", userIdentity=hidden,
            errorMessage="No username found in supplied account", sourceIPAddress="192.0.2.66",
        ),
        signin(
            5, "2026-11-20T10:04:00Z", mfa="No", userIdentity=assumed,
            additionalEventData={"MFAUsed": "No", "SamlProviderArn": "arn:aws:iam::111122223333:saml-provider/Okta"},
        ),
        signin(6, "2026-11-20T10:05:00Z", mfa="No", userIdentity=sso),
        identity_center(7, "2026-11-20T10:06:00Z", "CredentialVerification", "PASSWORD"),
        identity_center(8, "2026-11-20T10:06:10Z", "CredentialVerification", "TOTP", outcome="Failure"),
        identity_center(9, "2026-11-20T10:06:20Z", "UserAuthentication", "PASSWORD,TOTP"),
        identity_center(10, "2026-11-20T10:07:00Z", "UserAuthentication", "EXTERNAL_IDP"),
        identity_center(11, "2026-11-20T10:07:30Z", "UserAuthentication", "PASSWORD"),
        signin(12, "2026-11-20T10:08:00Z", eventName="CheckMfa", responseElements={"CheckMfa": "Success"}),
        # alice's activity after her sign-in, one of it a day later
        record(
            20, time="2026-11-20T10:20:00Z", eventSource="iam.amazonaws.com", eventName="CreateUser",
            requestParameters={"userName": "mallory", "tags": [{"key": "team", "value": "red"}]},
            responseElements={"user": {"userName": "mallory"}}, readOnly=False,
        ),
        record(21, time="2026-11-21T09:00:00Z", eventName="ListBuckets", eventSource="s3.amazonaws.com"),
        # a session of the Admin role, and an event of someone else
        record(22, time="2026-11-20T10:30:00Z", userIdentity=assumed, eventName="GetCallerIdentity"),
        record(
            23, time="2026-11-20T10:40:00Z", userIdentity=root, eventName="GetAccountSummary",
            myNewField={"why": "not in the schema"},
        ),
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs")
    rows = records()
    write_log(logs, log_key(0), rows)
    write_log(logs, log_key(1, suffix="Duplicate0000001"), rows[:1])  # one sign-in delivered twice
    target = tmp_path_factory.mktemp("views-data")
    stats = ingest_objects(walk([logs]), target, workers=1)
    assert stats.failed == 0 and stats.quarantined == 0
    return target


@pytest.fixture
def con(data: Path) -> duckdb.DuckDBPyConnection:
    return install_views(connect(data))


def eid(i: int) -> str:
    return f"00000000-0000-0000-0000-{i:012d}"


def signins(con: duckdb.DuckDBPyConnection, i: int, *columns: str) -> tuple[Any, ...]:
    row = con.execute(
        f"select {', '.join(columns)} from signins where eventID = $id",
        {"id": eid(i)},
    ).fetchall()
    assert len(row) == 1, row
    return tuple(row[0])


def test_one_row_per_signin_event_and_no_checkmfa(con: duckdb.DuckDBPyConnection) -> None:
    names = con.execute("select event_name, count(*) from signins group by all order by 1").fetchall()
    assert names == [("ConsoleLogin", 6), ("CredentialVerification", 2), ("UserAuthentication", 3)]


def test_mfa_used_is_case_insensitive_and_unknown_when_missing(con: duckdb.DuckDBPyConnection) -> None:
    assert signins(con, 1, "outcome", "mfa_used", "principal", "user_name") == ("Success", False, ALICE, "alice")
    assert signins(con, 2, "mfa_used", "principal", "identity_type") == (True, ROOT, "Root")
    assert signins(con, 3, "mfa_used") == (None,)


def test_hidden_user_name_is_not_a_principal(con: duckdb.DuckDBPyConnection) -> None:
    assert signins(con, 4, "outcome", "principal", "user_name", "failure_reason", "source_ip") == (
        "Failure", None, None, "No username found in supplied account", "192.0.2.66",
    )


def test_federated_sign_ins_are_marked(con: duckdb.DuckDBPyConnection) -> None:
    # MFAUsed says No, but the role session says mfaAuthenticated = true: that is MFA (as the detections read it)
    assert signins(con, 5, "federated", "mfa_used") == ("SAML", True)
    assert signins(con, 6, "federated") == ("IdentityCenter",)
    assert signins(con, 1, "federated") == (None,)


def test_identity_center_outcome_and_factors(con: duckdb.DuckDBPyConnection) -> None:
    assert signins(con, 7, "outcome", "mfa_used", "user_name", "auth_workflow_id") == (
        "Success", None, "idc-user-1", "wf-1",
    )
    assert signins(con, 8, "outcome", "mfa_used") == ("Failure", True)
    assert signins(con, 9, "mfa_used", "credential_type") == (True, "PASSWORD,TOTP")
    assert signins(con, 10, "mfa_used", "federated") == (None, "ExternalIdP")
    assert signins(con, 11, "mfa_used", "federated") == (False, None)


def test_duplicate_deliveries_are_counted_once(con: duckdb.DuckDBPyConnection) -> None:
    assert con.execute("select count(*) from signins where eventID = $id", {"id": eid(1)}).fetchone() == (1,)
    assert con.execute("select count(*) from events_all where eventID = $id", {"id": eid(1)}).fetchone() == (2,)


def test_json_helpers_read_fields_by_path(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        "select req(e, 'userName'), req(e, 'tags[0].value'), req(e, '$.tags[0].key'), resp(e, 'user.userName'), "
        "req(e, 'nope') from events e where eventName = 'CreateUser'"
    ).fetchone()
    assert row == ("mallory", "red", "team", "mallory", None)
    assert con.execute("select addl(e, 'MFAUsed') from events e where eventID = $id", {"id": eid(1)}).fetchall() == [
        ("No",)
    ]
    assert con.execute(
        "select svc(e, 'UserAuthentication') from events e where eventID = $id", {"id": eid(9)}
    ).fetchall() == [("Success",)]
    assert con.execute(
        "select extra_field(e, 'myNewField.why') from events e where eventName = 'GetAccountSummary'"
    ).fetchone() == ("not in the schema",)


def test_json_helpers_cost_the_same_as_json_extract(con: duckdb.DuckDBPyConnection) -> None:
    plan = str(con.execute("explain select req(e, 'userName') from events e").fetchall())
    assert "json_extract_string(requestParameters, '$.userName')" in plan


def test_timeline_by_arn_is_ordered_and_complete(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("select eventName from principal_timeline($p)", {"p": ALICE}).fetchall()
    assert [r[0] for r in rows] == ["ConsoleLogin", "ConsoleLogin", "CheckMfa", "CreateUser", "ListBuckets"]


def test_timeline_by_user_name_with_bounds(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "select eventName from principal_timeline('alice', since := '2026-11-20 10:10:00', until := '2026-11-21')"
    ).fetchall()
    assert rows == [("CreateUser",)]
    since_only = con.execute("select count(*) from principal_timeline('alice', since := '2026-11-20T10:10:00Z')")
    assert since_only.fetchone() == (2,)


def test_timeline_of_a_role_includes_its_sessions(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "select eventName, principal, mfa_authenticated from principal_timeline($p)", {"p": ADMIN_ROLE}
    ).fetchall()
    assert ("GetCallerIdentity", "arn:aws:sts::111122223333:assumed-role/Admin/alice", True) in rows
    assert {r[0] for r in rows} == {"ConsoleLogin", "GetCallerIdentity"}


def test_timeline_accepts_a_timestamp(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "select count(*) from principal_timeline($p, since := $t)", {"p": ROOT, "t": "2026-11-20 10:30:00+00"}
    ).fetchone()
    assert rows == (1,)


def test_installing_twice_is_harmless_and_lists_what_it_made(con: duckdb.DuckDBPyConnection) -> None:
    install_views(con)
    views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    macros = {r[0] for r in con.execute("select function_name from duckdb_functions() where not internal").fetchall()}
    assert set(VIEWS) <= views and set(MACROS) <= macros


def test_views_work_over_an_in_memory_table(data: Path) -> None:
    table = connect(data).sql("select * from events_all").to_arrow_table()
    con = install_views(connect(table=table))
    assert con.execute("select count(*) from signins").fetchone() == (11,)


# --- the staging views the detections read (console_signins, identity_center_*, identity_changes) ---


def _staged(rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    from analyzer.detect import events_connection

    return events_connection(rows)


def test_staging_views_are_the_ones_detections_may_read() -> None:
    from analyzer.detect.catalogue import STAGING_VIEWS

    assert set(STAGING_VIEWS) == set(VIEWS)


def test_console_signins_keys_principals_and_unifies_federation() -> None:
    sso_issuer = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/Custom/bob",  # not an AWSReservedSSO_ name...
        "accountId": "111122223333",
        "sessionContext": {"sessionIssuer": {
            "arn": "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_X_1"}},
    }
    lookalike = {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/MyAWSReservedSSO_x/eve",
                 "accountId": "111122223333"}
    failed = {"type": "IAMUser", "accountId": "111122223333", "userName": "Alice"}
    con = _staged([
        signin(1, "2026-11-20T10:00:00Z", userIdentity=sso_issuer),
        signin(2, "2026-11-20T10:00:00Z", userIdentity=lookalike),
        signin(3, "2026-11-20T10:00:00Z", outcome="failure", userIdentity=failed, errorMessage="Failed authentication"),
        signin(4, "2026-11-20T10:00:00Z", mfa="maybe"),
    ])
    rows = dict(
        (r[0][-1], r[1:]) for r in con.execute(
            "select eventID, federation, principal, principal_key, outcome, mfa_used from console_signins"
        ).fetchall()
    )
    # ...but its issuer is an Identity Center role path: the ARN pattern and the issuer path are one rule
    assert rows["1"][0] == "IdentityCenter"
    assert rows["2"][0] is None  # contains "AWSReservedSSO_" but is not an Identity Center session
    assert rows["3"][1:4] == ("Alice", "111122223333/alice", "Failure")  # outcome normalised, name keyed lower-case
    assert rows["4"][4] is False  # a recorded MFAUsed that is not "yes" is "without MFA"


def test_identity_center_workflows_group_steps_by_auth_workflow() -> None:
    con = _staged([
        identity_center(1, "2026-11-20T10:00:00Z", "CredentialVerification", "PASSWORD", outcome="Failure"),
        identity_center(2, "2026-11-20T10:00:10Z", "CredentialVerification", "PASSWORD"),
        identity_center(3, "2026-11-20T10:00:20Z", "UserAuthentication", "PASSWORD"),
    ])
    row = con.execute(
        "select workflow_id, authenticated, authenticated_with, mfa_verified, password_failures, steps, event_ids "
        "from identity_center_workflows"
    ).fetchall()
    assert row == [("wf-1", True, "PASSWORD", False, 1, 3, [eid(1), eid(2), eid(3)])]


def test_identity_changes_say_who_changed_whose_credentials() -> None:
    role = {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/Admin/ops",
            "accountId": "111122223333", "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}}
    root = {"type": "Root", "arn": ROOT, "accountId": "111122223333", "accessKeyId": ""}
    iam = "iam.amazonaws.com"
    con = _staged([
        record(1, eventSource=iam, eventName="CreateLoginProfile", userIdentity=role,
               requestParameters={"userName": "bob", "passwordResetRequired": False}),
        record(2, eventSource=iam, eventName="CreateAccessKey", requestParameters=None,
               responseElements={"accessKey": {"userName": "alice", "accessKeyId": "AKIANEW", "status": "Active"}}),
        record(3, eventSource=iam, eventName="CreateAccessKey", userIdentity=root, requestParameters=None),
        record(4, eventSource="signin.amazonaws.com", eventName="PasswordUpdated", userIdentity=root,
               responseElements={"PasswordUpdated": "Success"}),
        record(5, eventSource=iam, eventName="DeleteAccessKey", errorCode="NoSuchEntity",
               requestParameters={"userName": "carol", "accessKeyId": "AKIAOLD"}),
    ])
    rows = {
        r[0][-1]: r[1:] for r in con.execute(
            "select eventID, change_kind, caller_principal, target_user_name, target_is_caller, target_is_root, "
            "succeeded, caller_temporary from identity_changes"
        ).fetchall()
    }
    assert rows["1"] == ("login_profile", role["arn"], "bob", False, False, True, True)
    assert rows["2"] == ("access_key", ALICE, "alice", True, False, True, False)
    assert rows["3"] == ("access_key", ROOT, "root", True, True, True, False)
    assert rows["4"] == ("root_password", ROOT, "root", True, True, True, False)
    assert rows["5"][0] == "access_key" and rows["5"][5] is False
