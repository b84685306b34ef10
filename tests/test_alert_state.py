"""Alert state: fingerprints, "only new" across reruns and overlapping windows, per-notifier delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analyzer.alerts.state import AlertState, fingerprint

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
VICTOR = "arn:aws:iam::111122223333:user/victor"


def alert(*events: str, detection: str = "console-brute-force", severity: str = "high", principal: str = VICTOR,
          ip: str | None = "198.51.100.23", **extra: Any) -> dict[str, Any]:
    return {"detection_id": detection, "severity": severity, "title": "t", "account_id": "111122223333",
            "region": "us-east-1", "principal": principal, "user_name": "victor", "source_ip": ip,
            "user_agent": "ua", "first_seen": "2026-11-20T09:20:00Z", "last_seen": "2026-11-20T09:29:00Z",
            "count": len(events), "event_ids": list(events), "details": {}, **extra}


def ids(start: int, stop: int) -> list[str]:
    return [f"e{n:03d}" for n in range(start, stop)]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[AlertState]:
    with AlertState(tmp_path / "data") as opened:
        yield opened


def test_state_lives_next_to_the_dataset(tmp_path: Path) -> None:
    with AlertState(tmp_path / "data") as opened:
        assert opened.path == tmp_path / "data" / "_analyzer" / "alerts.sqlite"
    assert opened.path.is_file()


def test_fingerprint_names_detection_group_and_first_event() -> None:
    base = fingerprint(alert("e1", "e2"))
    assert base == fingerprint(alert("e1", "e2"))  # a rerun
    assert base == fingerprint(alert("e1", "e2", "e3"))  # the window grew at the end
    assert base == fingerprint(alert("e1", principal=VICTOR.upper()))  # principals compare case-insensitively
    assert base != fingerprint(alert("e2", "e3"))
    assert base != fingerprint(alert("e1", "e2", detection="console-login-failures"))
    assert base != fingerprint(alert("e1", "e2", ip="192.0.2.1"))
    assert len(base) == 32


def test_new_alerts_are_announced_and_queued_for_every_notifier(state: AlertState) -> None:
    tracked = state.record([alert("e1"), alert("e2", ip="192.0.2.9")], subscribers={"sns": "info", "hook": "info"},
                           now=NOW)
    assert [t.change for t in tracked] == ["new", "new"]
    assert {p.fingerprint for p in state.pending("sns")} == {t.fingerprint for t in tracked}
    assert len(state.pending("hook")) == 2


def test_a_rerun_announces_nothing(state: AlertState) -> None:
    first = state.record([alert("e1", "e2")], subscribers={"sns": "info"}, now=NOW)
    state.mark_sent("sns", [first[0].fingerprint])
    again = state.record([alert("e1", "e2")], subscribers={"sns": "info"}, now=NOW)
    assert again[0].fingerprint == first[0].fingerprint and again[0].change == "seen"
    assert state.pending("sns") == []


def test_an_overlapping_window_matches_on_shared_events(state: AlertState) -> None:
    first = state.record([alert(*ids(0, 5), principal="victor")], now=NOW)
    # the window slid past the first events, and an event carrying the ARN arrived
    later = state.record([alert(*ids(3, 8))], now=NOW + timedelta(days=1))
    assert later[0].fingerprint == first[0].fingerprint
    assert later[0].change == "seen"  # 8 distinct events, not yet twice the 5 announced


def test_an_alert_that_doubles_is_announced_again(state: AlertState) -> None:
    first = state.record([alert(*ids(0, 5))], subscribers={"sns": "info"}, now=NOW)
    state.mark_sent("sns", [first[0].fingerprint])
    grown = state.record([alert(*ids(0, 10))], subscribers={"sns": "info"}, now=NOW)
    assert grown[0].change == "grew"
    assert [(p.fingerprint, p.change) for p in state.pending("sns")] == [(first[0].fingerprint, "grew")]


def test_growth_zero_never_renotifies(state: AlertState) -> None:
    state.record([alert(*ids(0, 2))], now=NOW, growth=0)
    assert state.record([alert(*ids(0, 50))], now=NOW, growth=0)[0].change == "seen"


def test_a_rising_severity_is_announced_again(state: AlertState) -> None:
    state.record([alert("e1", severity="medium")], now=NOW)
    assert state.record([alert("e1", severity="critical")], now=NOW)[0].change == "escalated"
    assert state.record([alert("e1", severity="medium")], now=NOW)[0].change == "seen"


def test_a_failed_notifier_keeps_its_delivery_the_other_does_not(state: AlertState) -> None:
    [tracked] = state.record([alert("e1")], subscribers={"sns": "info", "hook": "info"}, now=NOW)
    state.mark_sent("sns", [tracked.fingerprint])
    state.mark_failed("hook", [tracked.fingerprint], "HTTP 500")
    # the next night's window no longer contains the alert: the webhook still has it to send
    state.record([alert("e9", ip="192.0.2.1")], subscribers={"sns": "info", "hook": "info"}, now=NOW)
    assert tracked.fingerprint not in {p.fingerprint for p in state.pending("sns")}
    [again] = [p for p in state.pending("hook") if p.fingerprint == tracked.fingerprint]
    assert again.change == "new" and again.attempts == 1 and again.alert["event_ids"] == ["e1"]
    assert state.delivery_status(tracked.fingerprint) == {"sns": "sent", "hook": "pending"}


def test_min_severity_holds_an_alert_back_until_it_escalates(state: AlertState) -> None:
    state.record([alert("e1", severity="low")], subscribers={"pager": "high"}, now=NOW)
    assert state.pending("pager") == []
    state.record([alert("e1", severity="high")], subscribers={"pager": "high"}, now=NOW)
    assert [p.change for p in state.pending("pager")] == ["escalated"]


def test_two_alerts_sharing_one_stored_alert_stay_two(state: AlertState) -> None:
    state.record([alert(*ids(0, 10))], now=NOW)
    # the same burst seen by IP and, with one more event from elsewhere, by principal
    tracked = state.record([alert(*ids(0, 10)), alert(*ids(0, 11), ip=None)], now=NOW)
    assert [t.change for t in tracked] == ["seen", "new"]
    assert tracked[0].fingerprint != tracked[1].fingerprint
    assert [t.fingerprint for t in state.record([alert(*ids(0, 10)), alert(*ids(0, 11), ip=None)], now=NOW)] == [
        t.fingerprint for t in tracked]


def test_disjoint_bursts_of_one_group_are_separate_alerts(state: AlertState) -> None:
    state.record([alert(*ids(0, 10))], now=NOW)
    assert state.record([alert(*ids(20, 30))], now=NOW)[0].change == "new"


def test_a_sighting_cut_short_by_the_window_keeps_the_fuller_payload(state: AlertState) -> None:
    state.record([alert(*ids(0, 6))], subscribers={"hook": "info"}, now=NOW)
    state.record([alert(*ids(4, 6))], subscribers={"hook": "info"}, now=NOW)
    assert state.pending("hook")[0].alert["event_ids"] == ids(0, 6)


def test_pending_is_most_urgent_first(state: AlertState) -> None:
    state.record([alert("e1", severity="low"), alert("e2", severity="critical", ip="192.0.2.2")],
                 subscribers={"sns": "info"}, now=NOW)
    assert [p.alert["severity"] for p in state.pending("sns")] == ["critical", "low"]


def test_last_success_is_the_latest_complete_run_before_a_time(state: AlertState) -> None:
    assert state.last_success() is None
    one = state.begin_run(now=NOW)
    state.finish_run(one, status="ok", since=NOW - timedelta(days=1), until=NOW, complete=True)
    two = state.begin_run(now=NOW)
    state.finish_run(two, status="partial", since=NOW, until=NOW + timedelta(days=1), complete=False)
    state.begin_run(now=NOW)  # still running (or crashed): never counts
    assert state.last_success() == NOW
    assert state.last_success(before=NOW) is None  # replaying that night finds the window it had
    assert [r.status for r in state.runs()] == ["ok", "partial", "running"]


def test_prune_forgets_old_delivered_alerts_but_keeps_pending_ones(state: AlertState) -> None:
    sent, kept = state.record([alert("e1"), alert("e2", ip="192.0.2.2")], subscribers={"sns": "info"}, now=NOW)
    state.mark_sent("sns", [sent.fingerprint])
    assert state.prune(NOW + timedelta(days=1)) == 1
    assert [p.fingerprint for p in state.pending("sns")] == [kept.fingerprint]
    assert state.record([alert("e1")], now=NOW)[0].change == "new"  # forgotten: announced again
