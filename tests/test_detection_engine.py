"""run_detections: the alert shape, the time window, parameters and allowlists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from analyzer.detect import ALERT_SCHEMA, Allowlist, events_connection, run_detections
from analyzer.errors import AnalyzerError


def login(event_id: str, when: str, *, user: str = "anaya", ip: str = "192.0.2.0", outcome: str = "Success",
          mfa: str = "No", role: str | None = None) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "type": "IAMUser",
        "arn": f"arn:aws:iam::111122223333:user/{user}",
        "accountId": "111122223333",
        "userName": user,
    }
    if role:
        identity = {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{user}",
            "accountId": "111122223333",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::111122223333:role/ops/{role}"},
                "attributes": {"mfaAuthenticated": "false"},
            },
        }
    return {
        "userIdentity": identity, "eventTime": when, "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1", "sourceIPAddress": ip, "responseElements": {"ConsoleLogin": outcome},
        "additionalEventData": {"MFAUsed": mfa}, "eventID": event_id, "eventType": "AwsConsoleSignIn",
    }


def failures(prefix: str, start_minute: int, count: int, *, hour: int = 10) -> list[dict[str, Any]]:
    return [login(f"{prefix}-{i}", f"2024-05-01T{hour:02d}:{start_minute + i:02d}:00Z", user="alice", ip="203.0.113.66",
                  outcome="Failure") for i in range(count)]


def test_alerts_have_the_alert_shape() -> None:
    run = run_detections(events_connection([login("e1", "2024-05-01T12:00:00Z")]))
    assert run.alerts.schema == pl.Schema(ALERT_SCHEMA)
    assert run.alerts["detection_id"].to_list() == ["console-login-without-mfa"]
    assert set(run.counts) == set(run.params) and run.counts["console-login-without-mfa"] == 1


def test_a_quiet_run_returns_an_empty_frame_with_the_schema() -> None:
    run = run_detections(events_connection([login("e1", "2024-05-01T12:00:00Z", mfa="Yes")]))
    assert run.alerts.height == 0 and run.alerts.schema == pl.Schema(ALERT_SCHEMA)
    assert sum(run.counts.values()) == 0


def test_window_keeps_an_event_at_2359_in_its_own_day_and_drops_the_rest() -> None:
    con = events_connection([login("late", "2024-05-01T23:59:59Z"), login("next", "2024-05-02T00:00:00Z"),
                             login("early", "2024-04-30T23:59:59Z")])
    run = run_detections(con, since=datetime(2024, 5, 1, tzinfo=UTC), until=datetime(2024, 5, 2, tzinfo=UTC),
                         only=["console-login-without-mfa"])
    assert run.alerts["event_ids"].to_list() == [["late"]]
    assert con.sql("select count(*) from events").fetchall() == [(3,)]  # the shadow view is gone afterwards


def test_a_burst_straddling_since_is_seen_whole() -> None:
    con = events_connection(failures("f", 50, 10, hour=9))  # 09:50 .. 09:59
    run = run_detections(con, since=datetime(2024, 5, 1, 9, 55, tzinfo=UTC), only=["console-brute-force"])
    assert run.alerts["count"].to_list() == [10]


def test_param_overrides_are_typed_by_their_defaults() -> None:
    con = events_connection(failures("f", 0, 3))
    assert run_detections(con, only=["console-brute-force"]).alerts.height == 0
    run = run_detections(con, only=["console-brute-force"],
                         params={"console-brute-force": {"ip_threshold": "3"}})
    assert run.alerts.height == 1
    assert run.params["console-brute-force"]["ip_threshold"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"no-such-detection": {"x": 1}}, "unknown detection"),
        ({"console-brute-force": {"treshold": 1}}, "has no parameter 'treshold'"),
        ({"console-brute-force": {"ip_threshold": "ten"}}, "not a valid int"),
        ({"console-brute-force": {"ip_threshold": 0}}, "below its minimum"),
        ({"console-login-without-mfa": {"include_federated": "maybe"}}, "not a valid bool"),
    ],
)
def test_bad_parameters_are_clear_errors(params: dict[str, dict[str, Any]], message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        run_detections(events_connection([login("e1", "2024-05-01T12:00:00Z")]), params=params)


def test_unknown_only_id_is_an_error() -> None:
    with pytest.raises(AnalyzerError, match="unknown detection id"):
        run_detections(events_connection([login("e1", "2024-05-01T12:00:00Z")]), only=["nope"])


def test_since_after_until_is_an_error() -> None:
    with pytest.raises(AnalyzerError, match="must be before"):
        run_detections(events_connection([login("e1", "2024-05-01T12:00:00Z")]),
                       since=datetime(2024, 5, 2, tzinfo=UTC), until=datetime(2024, 5, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "allowlist",
    [
        {"principals": ["arn:aws:iam::111122223333:user/anaya"]},
        {"principals": ["ANAYA"]},
        {"ips": ["192.0.2.0/24"]},
        {"ips": ["192.0.2.0"]},
    ],
)
def test_allowlisted_alerts_are_suppressed_and_counted(allowlist: dict[str, list[str]]) -> None:
    con = events_connection(
        [login("e1", "2024-05-01T12:00:00Z"), login("e2", "2024-05-01T12:00:00Z", user="bob", ip="198.51.100.1")]
    )
    run = run_detections(con, only=["console-login-without-mfa"], allowlist=allowlist)
    assert run.alerts["user_name"].to_list() == ["bob"]
    assert run.suppressed == 1 and run.suppressed_by_detection == {"console-login-without-mfa": 1}


@pytest.mark.parametrize("role", ["BrokerRole", "brokerrole", "arn:aws:iam::111122223333:role/ops/BrokerRole"])
def test_roles_match_sessions_of_the_role(role: str) -> None:
    con = events_connection([login("e1", "2024-05-01T12:00:00Z", role="BrokerRole")])
    assert run_detections(con, only=["console-login-without-mfa"]).alerts.height == 1
    run = run_detections(con, only=["console-login-without-mfa"], allowlist=Allowlist(roles=(role,)))
    assert run.alerts.height == 0 and run.suppressed == 1


def test_a_role_in_another_account_does_not_match() -> None:
    con = events_connection([login("e1", "2024-05-01T12:00:00Z", role="BrokerRole")])
    run = run_detections(con, only=["console-login-without-mfa"],
                         allowlist={"roles": ["arn:aws:iam::999999999999:role/BrokerRole"]})
    assert run.alerts.height == 1 and run.suppressed == 0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"principal": ["x"]}, "unknown key"),
        ({"ips": ["10.0.0.0/33"]}, "not an address or CIDR"),
        ({"ips": "x"}, "a list"),
    ],
)
def test_bad_allowlists_are_clear_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        Allowlist.from_mapping(table)


def test_console_user_without_mfa_is_reported_once_by_consecutive_nightly_runs() -> None:
    """A profile created late on day 1 waits for its window: the day-1 run is silent, the day-2 run reports it."""
    def call(event_id: str, when: str, name: str, params: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/admin",
                             "accountId": "111122223333", "userName": "admin"},
            "eventTime": when, "eventSource": "iam.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
            "sourceIPAddress": "192.0.2.10", "requestParameters": params, "eventID": event_id,
            "eventType": "AwsApiCall",
        }

    con = events_connection([
        call("profile", "2024-05-01T20:00:00Z", "CreateLoginProfile", {"userName": "carol"}),
        call("day1", "2024-05-01T23:00:00Z", "ListUsers", None),
        call("day2", "2024-05-02T23:00:00Z", "ListUsers", None),
        call("day3", "2024-05-03T23:00:00Z", "ListUsers", None),
    ])
    day = [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    found = [
        run_detections(con, since=day[i], until=day[i + 1], only=["console-user-without-mfa"]).alerts["event_ids"]
        .to_list()
        for i in range(3)
    ]
    assert found == [[], [["profile"]], []]
