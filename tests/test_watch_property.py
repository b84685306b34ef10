"""The watch's invariants under random interleavings (hypothesis, bounded): batches of notifications
(four envelopes, duplicates, redeliveries of what was settled before, poison messages, skips) settled
by :func:`analyzer.jobs.stream.run_batch` against the moto server's S3 -> every good event once in the
dataset, every alert posted once, every poison message failing with its reason named, every other
message done; a rerun of everything converges (nothing new ingested or posted, the same verdicts)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqs_notices import Hook, eventbridge_event, put_log, s3_event, s3_test_event, signin, sns_envelope

from analyzer.alerts.notify import notifiers_from_config
from analyzer.detect import Catalogue, load_catalogue
from analyzer.jobs.stream import Detection, Item, run_batch

from s3_server import S3Server, cloudtrail_key, dataset_rows

BUCKET = "trail"
WHEN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
GOOD = 4
ENVELOPES = ("s3", "sns", "raw", "eventbridge")


def envelope(form: str, key: str, etag: str, size: int) -> str:
    direct = s3_event(BUCKET, key, etag, size)
    if form == "s3" or form == "raw":  # SNS with raw delivery carries the S3 event itself
        return json.dumps(direct)
    if form == "sns":
        return json.dumps(sns_envelope(direct))
    return json.dumps(eventbridge_event(BUCKET, key, etag, size))


@pytest.fixture
def world(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Four good log objects (two sign-ins without MFA each), a missing one, an undecodable one."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    good: list[tuple[str, str, int, list[str]]] = []
    for index in range(GOOD):
        when = WHEN + timedelta(minutes=index)
        records = [signin(when + timedelta(seconds=n), user=f"user{index}") for n in range(2)]
        key = cloudtrail_key("111122223333", "us-east-1", when, unique=f"{index:016X}")
        etag, size = put_log(client, BUCKET, key, records)
        good.append((key, etag, size, [r["eventID"] for r in records]))
    missing = cloudtrail_key("111122223333", "us-east-1", WHEN, unique="MISSING000000000")
    broken = cloudtrail_key("111122223333", "us-east-1", WHEN, unique="BROKEN0000000000")
    broken_etag = client.put_object(Bucket=BUCKET, Key=broken, Body=b"\x1f\x8b\x08 truncated")["ETag"].strip('"')
    poison = {
        "not-json": ("{not json", "not a notification"),
        "missing": (envelope("s3", missing, "0" * 32, 99), missing),
        "broken": (envelope("eventbridge", broken, broken_etag, 12), broken),
        "no-s3": (json.dumps({"Records": [{"eventSource": "aws:ec2"}]}), "not a notification"),
    }
    skips = [json.dumps(s3_test_event(BUCKET)), envelope("sns", "uploads/report.csv", "1" * 32, 5)]
    catalogue = load_catalogue()
    only = catalogue["console-login-without-mfa"]
    detection = Detection(Catalogue([only], catalogue.directory))
    with Hook() as hook:
        monkeypatch.setenv("TEST_WATCH_PROPERTY_HOOK", hook.url)
        notifiers = notifiers_from_config(
            {"notify": {"webhook": {"url_env": "TEST_WATCH_PROPERTY_HOOK", "include_alerts": True}}}
        )
        yield {
            "client": client,
            "good": good,
            "poison": poison,
            "skips": skips,
            "hook": hook,
            "notifiers": notifiers,
            "detection": detection,
        }


message = st.one_of(
    st.tuples(st.just("good"), st.integers(0, GOOD - 1), st.sampled_from(ENVELOPES)),
    st.tuples(st.just("poison"), st.sampled_from(["not-json", "missing", "broken", "no-s3"]), st.just("")),
    st.tuples(st.just("skip"), st.integers(0, 1), st.just("")),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    messages=st.lists(message, min_size=1, max_size=12),
    cuts=st.lists(st.integers(1, 5), max_size=6),
    redeliver=st.lists(st.integers(0, 11), max_size=4),
)
def test_random_interleavings_ingest_every_good_event_once(
    world: Any, messages: list[tuple[str, Any, str]], cuts: list[int], redeliver: list[int]
) -> None:
    hook: Hook = world["hook"]
    with hook.lock:
        hook.bodies.clear()
    data = Path(tempfile.mkdtemp(prefix="watch-property-"))
    try:
        bodies: list[tuple[str, str, Any]] = []  # (body, verdict, what a failure must name)
        for kind, which, form in messages:
            if kind == "good":
                key, etag, size, _ = world["good"][which]
                bodies.append((envelope(form, key, etag, size), "done", None))
            elif kind == "poison":
                body, named = world["poison"][which]
                bodies.append((body, "failing", named))
            else:
                bodies.append((world["skips"][which], "done", None))
        # the queue's order: the messages, then redeliveries of some (a crash before their delete)
        order = list(range(len(bodies))) + [i for i in redeliver if i < len(bodies)]
        batches: list[list[int]] = []
        start = 0
        for cut in [*cuts, len(order)]:
            if start < len(order):
                batches.append(order[start : start + cut])
                start += cut
        if start < len(order):
            batches.append(order[start:])
        verdicts: dict[int, set[str]] = {}
        for number, batch in enumerate(batches):
            result = settle(world, data, [Item((number, i), bodies[i][0]) for i in batch])
            for key in result.done:
                verdicts.setdefault(key[1], set()).add("done")
            for key, why in result.failing:
                verdicts.setdefault(key[1], set()).add("failing")
                named = bodies[key[1]][2]
                assert named and named in why, (bodies[key[1]][0], why)
        assert {i: {bodies[i][1]} for i in set(order)} == verdicts
        wanted = sorted({i for kind, which, _ in messages if kind == "good" for i in world["good"][which][3]})
        assert sorted(row[0] for row in dataset_rows(data)) == wanted  # every good event once
        posted = Counter(a["fingerprint"] for a in hook.alerts())
        assert sum(posted.values()) == len(wanted) and set(posted.values()) <= {1}
        rerun = settle(world, data, [Item(("rerun", i), body) for i, (body, _, _) in enumerate(bodies)])
        assert rerun.stats.ingested == 0
        assert sorted(k[1] for k in rerun.done) == [i for i, b in enumerate(bodies) if b[1] == "done"]
        assert sorted(row[0] for row in dataset_rows(data)) == wanted
        assert sum(Counter(a["fingerprint"] for a in hook.alerts()).values()) == len(wanted)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def settle(world: Any, data: Path, items: list[Item]) -> Any:
    return run_batch(items, data, s3_client=world["client"], notifiers=world["notifiers"], detection=world["detection"])
