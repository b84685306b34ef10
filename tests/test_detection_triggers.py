"""A detection's ``[trigger]`` is a promise: it raises alerts only from events that match it.

The engine trusts that promise to skip a detection whose range holds no such event, so a promise
that is too narrow would hide alerts. It is checked here the way it could be broken: every record we
have (each detection's cases, the bundled fixtures, the conformance captures), with the events the
trigger names taken out, must raise nothing, and a random part of them too. Then the engine: skipping
changes no alert over the fixtures, looks back as far as each detection reads, and says what it skipped.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.detect import load_catalogue, run_detections
from analyzer.detect.cases import _table, events_connection
from analyzer.detect.catalogue import CatalogueError, Detection

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = load_catalogue()
TRIGGERED = [d for d in CATALOGUE.values() if d.trigger]


def matches(detection: Detection, record: Mapping[str, Any]) -> bool:
    """The engine's test, on a raw record: every trigger column holds one of its values."""
    for column, values in detection.trigger.items():
        value: Any = record
        for part in column.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value not in values:
            return False
    return True


def _records_in(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "eventName" in value and isinstance(value.get("eventTime"), str):
            yield value
            return
        for item in value.values():
            yield from _records_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _records_in(item)


@cache
def corpus() -> tuple[dict[str, Any], ...]:
    """Every record at hand: all the cases, the fixtures and the conformance captures (each placeable)."""
    records = [r for d in CATALOGUE.values() for case in d.cases for r in case.records]
    for path in sorted((ROOT / "fixtures").rglob("*.json*")):
        raw = path.read_bytes()
        try:
            records.extend(_records_in(json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)))
        except ValueError:
            continue  # JSON Lines, CSV exports...: their records are in the cases and fixtures anyway
    placeable = []
    for record in records:
        try:
            _table([record], "corpus.json")
        except ValueError:  # no eventTime it can read, say: the ingest would quarantine it
            continue
        placeable.append(record)
    return tuple(placeable)


def alerts_of(detection: Detection, records: list[dict[str, Any]], params: Mapping[str, Any] | None = None,
              superseded: list[dict[str, Any]] | None = None) -> int:
    if not records:
        return 0
    con = events_connection(records, superseded=superseded or ())
    try:
        run = run_detections(con, only=[detection.id], params={detection.id: dict(params or {})},
                             catalogue=CATALOGUE, skip_untriggered=False)
    finally:
        con.close()
    return run.alerts.height


def test_most_detections_declare_a_trigger() -> None:
    assert len(TRIGGERED) >= 15, [d.id for d in TRIGGERED]
    assert len(corpus()) >= 300


@pytest.mark.parametrize("detection", TRIGGERED, ids=lambda d: d.id)
def test_without_its_trigger_events_a_detection_raises_nothing(detection: Detection) -> None:
    raised = [case.name for case in detection.cases if case.alerts]
    assert raised, "a detection with a trigger needs a positive case to show the trigger is not too wide"
    for case in detection.cases:
        rest = [r for r in case.records if not matches(detection, r)]
        assert alerts_of(detection, rest, case.params, case.superseded) == 0, case.name
    rest = [r for r in corpus() if not matches(detection, r)]
    assert alerts_of(detection, rest) == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_part_of_the_records_without_trigger_events_raises_anything(data: st.DataObject) -> None:
    detection = data.draw(st.sampled_from(TRIGGERED), label="detection")
    rest = [r for r in corpus() if not matches(detection, r)]
    chosen = data.draw(st.lists(st.sampled_from(range(len(rest))), min_size=1, max_size=60, unique=True))
    assert alerts_of(detection, [rest[i] for i in sorted(chosen)]) == 0


def _window_run(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, skip: bool) -> Any:
    return run_detections(con, since=since, until=until, catalogue=CATALOGUE, skip_untriggered=skip)


def _alert_keys(run: Any) -> list[tuple[Any, ...]]:
    return sorted(run.alerts.select("detection_id", "first_seen", "last_seen", "principal", "event_ids").rows())


def test_skipping_changes_no_alert_over_the_fixtures(fixtures_dataset: Path) -> None:
    from analyzer.store import connect

    con = connect(fixtures_dataset)
    first, last = con.execute("select min(eventTime), max(eventTime) from events").fetchone()  # type: ignore[misc]
    assert first is not None and last is not None
    span = last - first
    for start in (first, first + span / 3, first + span / 2, last - timedelta(hours=1)):
        for length in (timedelta(hours=1), timedelta(days=1), span + timedelta(seconds=1)):
            since, until = start, min(start + length, last + timedelta(seconds=1))
            full, skipping = _window_run(con, since, until, False), _window_run(con, since, until, True)
            assert _alert_keys(full) == _alert_keys(skipping), (since, until)
            assert not set(skipping.skipped) & set(skipping.durations)
            for detection_id in skipping.skipped:
                assert full.counts[detection_id] == 0
    con.close()


def _signin(when: datetime, user: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.08", "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.9", "eventID": f"signin-{user}-{when:%H%M}", "eventType": "AwsConsoleSignIn",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "userName": user,
                         "arn": f"arn:aws:iam::111122223333:user/{user}", "principalId": "AIDAEXAMPLE"},
        "responseElements": {"ConsoleLogin": "Success"},
        "additionalEventData": {"MFAUsed": "No", "LoginTo": "https://console.aws.amazon.com/"},
    }


def test_a_trigger_event_in_the_lookback_is_enough() -> None:
    """console-user-without-mfa alerts a day after a CreateLoginProfile, on any later event: the
    window holds only a sign-in, the trigger event is in the lookback before it."""
    detection = CATALOGUE["console-user-without-mfa"]
    created = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    profile = {
        "eventVersion": "1.08", "eventTime": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "iam.amazonaws.com", "eventName": "CreateLoginProfile", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7", "eventID": "profile-1", "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "IAMUser", "accountId": "111122223333", "userName": "admin",
                         "arn": "arn:aws:iam::111122223333:user/admin", "principalId": "AIDAADMIN"},
        "requestParameters": {"userName": "newbie", "passwordResetRequired": True},
        "responseElements": {"loginProfile": {"userName": "newbie", "createDate": "Nov 2, 2026 9:00:00 AM"}},
    }
    later = created + timedelta(days=1, minutes=2)  # the window holds the deadline, a day after
    con = events_connection([profile, _signin(later, "someone")])
    since, until = later - timedelta(minutes=5), later + timedelta(minutes=5)
    full, skipping = _window_run(con, since, until, False), _window_run(con, since, until, True)
    con.close()
    assert full.counts[detection.id] == 1
    assert skipping.counts[detection.id] == 1 and detection.id not in skipping.skipped
    assert _alert_keys(full) == _alert_keys(skipping)
    assert "access-key-for-other-user" in skipping.skipped  # nothing of its kind anywhere
    assert "console-login-without-mfa" not in skipping.skipped  # the window's sign-in


def test_a_window_without_trigger_events_is_not_queried() -> None:
    when = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    con = events_connection([_signin(when, "alice")])
    run = _window_run(con, when - timedelta(hours=1), when + timedelta(hours=1), True)
    con.close()
    assert set(run.skipped) == {d.id for d in TRIGGERED} - {
        d.id for d in TRIGGERED if matches(d, _signin(when, "alice"))}
    assert "console-login-without-mfa" in run.durations and run.counts["console-login-without-mfa"] == 1
    assert all(run.counts[i] == 0 for i in run.skipped)
    untriggered = {d.id for d in CATALOGUE.values() if not d.trigger}
    assert untriggered <= set(run.durations)  # no trigger: always queried


def test_a_bad_trigger_is_named(tmp_path: Path) -> None:
    import shutil

    for suffix in (".sql", ".toml"):
        shutil.copy(ROOT / "queries" / f"_template{suffix}", tmp_path / f"template-example{suffix}")
    meta = tmp_path / "template-example.toml"
    text, shown = re.subn(r"\neventName = \[[^\n]*", '\nnoSuchColumn = ["x"]\nrequestParameters = ["y"]\n'
                          'userIdentity = ["z"]\neventName = []', meta.read_text(), count=1)
    assert shown == 1  # the template shows a trigger
    meta.write_text(text)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(tmp_path)
    problems = "\n".join(caught.value.problems)
    assert "'noSuchColumn' is not a text column" in problems
    assert "'requestParameters' is not a text column" in problems  # JSON: no value to compare
    assert "'userIdentity' is not a text column" in problems  # a struct
    assert "trigger.eventName: a non-empty list of strings" in problems
