"""Summaries: counts by detection and severity, top principals and IPs, MFA coverage, the series."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
from test_render import alert

from analyzer import build_table, connect, decode_object
from analyzer.alerts import console_signins, mfa_coverage, signin_series, summarize
from analyzer.alerts.summary import SIGNIN_SCHEMA

from records import record

ALICE = "arn:aws:iam::111122223333:user/alice"


def login(i: int, user: str = "alice", *, mfa: str | None = "No", outcome: str = "Success",
          time: str = "2026-11-20T10:00:00Z", **identity: Any) -> dict[str, Any]:
    extra = {"MFAUsed": mfa} if mfa is not None else None
    base = record(i, time=time, eventSource="signin.amazonaws.com", eventName="ConsoleLogin",
                  eventType="AwsConsoleSignIn", responseElements={"ConsoleLogin": outcome}, additionalEventData=extra)
    base["userIdentity"] |= {"arn": f"arn:aws:iam::111122223333:user/{user}", "userName": user} | identity
    return base


def events(*records: dict[str, Any]) -> Any:
    table, _ = build_table([("test", decode_object(json.dumps({"Records": list(records)}).encode()))])
    return connect(table=table)


def signins() -> pl.DataFrame:
    rows = [
        (datetime(2026, 11, 20, 10, tzinfo=UTC), "success", ALICE, "with_mfa"),
        (datetime(2026, 11, 20, 11, tzinfo=UTC), "success", ALICE, "without_mfa"),
        (datetime(2026, 11, 22, 9, tzinfo=UTC), "success", "arn:bob", "federated"),
        *[(datetime(2026, 11, 22, 3, tzinfo=UTC), "failure", None, "without_mfa")] * 12,
    ]
    return pl.DataFrame(rows, schema=SIGNIN_SCHEMA, orient="row")


def test_counts_by_detection_and_severity() -> None:
    s = summarize(pl.DataFrame([alert(), alert(), alert(detection_id="root-activity", severity="critical")]))
    assert s.by_detection.select("detection_id", "severity", "alerts").rows() == [
        ("root-activity", "critical", 1), ("console-login-without-mfa", "high", 2)]


def test_by_severity_lists_every_level_most_severe_first() -> None:
    s = summarize(pl.DataFrame([alert(), alert(severity="low")]))
    assert s.by_severity.rows() == [("critical", 0), ("high", 1), ("medium", 0), ("low", 1), ("info", 0)]


def test_same_detection_at_two_severities_is_two_rows() -> None:
    s = summarize(pl.DataFrame([alert(), alert(severity="critical")]))
    assert s.by_detection["severity"].to_list() == ["critical", "high"]


def test_top_principals_rank_by_severity_then_alerts() -> None:
    rows = [alert(principal="a"), alert(principal="a"), alert(principal="b", severity="critical"), alert()]
    top = summarize(pl.DataFrame(rows)).top_principals.select("principal", "severity", "alerts").rows()
    assert top[:2] == [("b", "critical", 1), ("a", "high", 2)]


def test_a_user_named_by_failures_and_by_arn_is_one_principal() -> None:
    rows = [alert(), alert(principal="alice", detection_id="console-login-failures", severity="medium"),
            alert(principal="alice", account_id="444455556666"),  # another account's alice
            alert(principal="arn:aws:iam::111122223333:role/alice", user_name="alice")]  # a role is not the user
    top = summarize(pl.DataFrame(rows)).top_principals
    assert sorted(top.select("principal", "alerts").rows()) == [
        ("alice", 1), ("arn:aws:iam::111122223333:role/alice", 1), (ALICE, 2)]
    assert top.filter(pl.col("principal") == ALICE)["detections"].to_list() == [
        ["console-login-failures", "console-login-without-mfa"]]


def test_hidden_principal_is_unknown() -> None:
    assert summarize(pl.DataFrame([alert(principal=None)])).top_principals["principal"].to_list() == ["(unknown)"]


def test_events_are_distinct_not_summed_over_alerts() -> None:
    # one failed sign-in raises a failures alert and a brute-force alert: it is one event
    rows = [alert(count=2, event_ids=["e-1", "e-2"]),
            alert(detection_id="console-brute-force", count=3, event_ids=["e-2", "e-3", "e-1"]),
            alert(principal="bob", count=4, event_ids=[])]  # lists no ids: its count is all there is
    s = summarize(pl.DataFrame(rows))
    assert s.events == 3 + 4 and s.as_dict()["events"] == 7
    assert s.top_source_ips.select("source_ip", "alerts", "events").rows() == [("203.0.113.9", 3, 7)]
    assert s.top_principals.select("principal", "alerts", "events").rows() == [(ALICE, 2, 3), ("bob", 1, 4)]
    assert sorted(s.by_detection.select("detection_id", "events").rows()) == [
        ("console-brute-force", 3), ("console-login-without-mfa", 6)]


def test_hidden_principals_share_one_distinct_count() -> None:
    rows = [alert(principal=None, user_name=None, event_ids=["e-1"], count=1),
            alert(principal=None, user_name=None, event_ids=["e-1", "e-9"], count=2)]
    assert summarize(pl.DataFrame(rows)).top_principals.select("principal", "events").rows() == [("(unknown)", 2)]


def test_first_and_last_seen_span_all_alerts() -> None:
    s = summarize(pl.DataFrame([alert(), alert(first_seen="2026-11-01T00:00:00Z", last_seen="2026-11-30T00:00:00Z")]))
    assert (s.first_seen, s.last_seen) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))


def test_no_alerts_summarise_to_zeroes() -> None:
    s = summarize(pl.DataFrame())
    assert (s.alerts, s.events, s.first_seen, s.top_principals.height) == (0, 0, None, 0)


def test_suppressed_count_is_carried() -> None:
    assert summarize(pl.DataFrame(), suppressed=5).as_dict()["suppressed"] == 5


def test_mfa_used_compared_case_insensitively() -> None:
    s = console_signins(events(login(1, mfa="YES"), login(2, mfa="yes"), login(3, mfa="No")))
    assert sorted(s["mfa"].to_list()) == ["with_mfa", "with_mfa", "without_mfa"]


def test_missing_mfa_used_is_unknown_not_without() -> None:
    assert console_signins(events(login(1, mfa=None)))["mfa"].to_list() == ["unknown"]


def test_saml_login_is_federated() -> None:
    saml = login(1) | {"additionalEventData": {"MFAUsed": "No", "SamlProviderArn": "arn:aws:iam::1:saml-provider/x"}}
    assert console_signins(events(saml))["mfa"].to_list() == ["federated"]


def test_identity_center_login_is_federated() -> None:
    sso = login(1, type="AssumedRole", arn="arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0123/alice")
    assert console_signins(events(sso))["mfa"].to_list() == ["federated"]


def test_mfa_authenticated_session_counts_as_with_mfa() -> None:
    row = login(1, sessionContext={"attributes": {"mfaAuthenticated": "TRUE", "creationDate": "2026-11-20T10:00:00Z"}})
    assert console_signins(events(row))["mfa"].to_list() == ["with_mfa"]


def test_hidden_user_name_has_no_principal() -> None:
    failure = login(1, "HIDDEN_DUE_TO_SECURITY_REASONS", outcome="Failure", arn=None)
    assert console_signins(events(failure))["principal"].to_list() == [None]


def test_other_events_are_not_signins() -> None:
    assert console_signins(events(record(1), login(2) | {"eventName": "CheckMfa"})).is_empty()


def test_signins_respect_the_window() -> None:
    con = events(login(1, time="2026-11-20T23:59:59Z"), login(2, time="2026-11-21T00:00:00Z"))
    since, until = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
    found = console_signins(con, since=since, until=until)["event_time"].to_list()
    assert found == [datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC)]


def test_duplicate_delivery_counts_once() -> None:
    assert console_signins(events(login(1), login(1))).height == 1


def test_coverage_per_principal_puts_gaps_first() -> None:
    cov = mfa_coverage(signins())
    assert cov.select("principal", "with_mfa", "without_mfa", "federated", "total").rows() == [
        (ALICE, 1, 1, 0, 2), ("arn:bob", 0, 0, 1, 1)]


def test_coverage_ignores_failures() -> None:
    assert mfa_coverage(signins())["principal"].to_list() == [ALICE, "arn:bob"]


def test_series_fills_empty_days_and_marks_failure_spikes() -> None:
    series = signin_series(signins())
    assert series.select("with_mfa", "without_mfa", "federated", "failures", "spike").rows() == [
        (1, 1, 0, 0, False), (0, 0, 0, 0, False), (0, 0, 1, 12, True)]


def test_series_by_hour() -> None:
    assert signin_series(signins(), every="1h").height == 48


def identity_center(i: int, step: str, outcome: str, factor: str, user: str = "nikhil") -> dict[str, Any]:
    return record(i, eventSource="signin.amazonaws.com", eventName=step, eventType="AwsServiceEvent",
                  userIdentity={"type": "IdentityCenterUser", "accountId": "111122223333",
                                "onBehalfOf": {"userId": user, "identityStoreArn": "arn:aws:identitystore::1:x"}},
                  serviceEventDetails={step: outcome},
                  additionalEventData={"CredentialType": factor, "AuthWorkflowID": f"flow-{user}"})


def test_identity_center_sign_ins_are_counted_with_console_ones() -> None:
    con = events(
        login(1),  # a console sign-in without MFA
        identity_center(2, "CredentialVerification", "Success", "PASSWORD"),
        identity_center(3, "CredentialVerification", "Failure", "TOTP"),  # a failed MFA code
        identity_center(4, "CredentialVerification", "Success", "PASSWORD", user="ida"),
        identity_center(5, "UserAuthentication", "Success", "PASSWORD,TOTP", user="ida"),
    )
    found = console_signins(con)
    assert sorted(found.select("principal", "outcome", "mfa").rows(), key=str) == sorted(
        [(ALICE, "success", "without_mfa"), ("nikhil", "failure", "with_mfa"), ("ida", "success", "with_mfa")], key=str)
    series = signin_series(found)
    assert series.select("with_mfa", "without_mfa", "failures").rows() == [(1, 1, 1)]
    assert mfa_coverage(found).select("principal", "with_mfa", "without_mfa").rows() == [(ALICE, 0, 1), ("ida", 1, 0)]
