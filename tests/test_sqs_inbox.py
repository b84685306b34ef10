"""sqs.Inbox on the moto server: what watch receives ahead while it settles a batch.

The invariants a consumer relies on: every message is taken exactly once (or handed back by
``release``), nothing beyond ``hold`` is held, each held message is in the heartbeat, ``once`` ends only
when a receive made while nothing was held or out comes back empty, and a failed receive is raised,
never taken for an empty queue.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from sqs_notices import counts, make_queue

from analyzer.errors import AnalyzerError
from analyzer.sources.sqs import Heartbeat, Inbox, Queue

from s3_server import S3Server


@pytest.fixture
def sqs(s3: S3Server) -> Any:
    return boto3.client("sqs", endpoint_url=s3.endpoint_url, region_name="us-east-1")


def fill(sqs: Any, url: str, count: int) -> list[str]:
    bodies = [f"message {n:04d}" for n in range(count)]
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start:start + 10])])
    return bodies


def test_once_takes_every_message_exactly_once_and_holds_at_most_hold(sqs: Any) -> None:
    url, _ = make_queue(sqs, "inbox")
    bodies = fill(sqs, url, 57)
    queue = Queue(sqs, url)
    taken: list[str] = []
    with Heartbeat(queue, visibility=60) as beat, Inbox(queue, beat, wait=1, visibility=60, hold=12,
                                                        once=True) as inbox:
        while True:
            batch = inbox.take(limit=12, window=0.1, idle=5)
            assert len(batch) <= 12
            if not batch:
                if inbox.drained:
                    break
                continue
            assert {m.receipt for m in batch} <= set(beat.flying)  # invisible to others while held
            time.sleep(0.3)  # settling: the inbox receives ahead meanwhile, never beyond hold
            assert len(beat.flying) <= 2 * 12
            taken += [m.body for m in batch]
            queue.delete(batch)
            beat.drop(batch)
            inbox.settled()
    assert sorted(taken) == bodies  # each once
    assert counts(sqs, url) == (0, 0)


def test_once_receives_a_message_set_visible_again_while_its_batch_was_out(sqs: Any) -> None:
    """A message that fails and is made visible at once (retry_after = 0) comes back before --once ends."""
    url, _ = make_queue(sqs, "inbox-retry", max_receive=5)
    fill(sqs, url, 1)
    queue = Queue(sqs, url)
    seen: list[int] = []
    with Heartbeat(queue, visibility=60) as beat, Inbox(queue, beat, wait=1, visibility=60, hold=10,
                                                        once=True) as inbox:
        while not inbox.drained:
            batch = inbox.take(limit=10, window=0, idle=5)
            if not batch:
                continue
            seen += [m.receive_count for m in batch]
            time.sleep(1.5)  # the inbox's receives meanwhile come back empty: the message is out
            beat.drop(batch)
            if len(seen) < 3:
                queue.set_visibility(batch, 0)  # failed: straight back on the queue
            else:
                queue.delete(batch)
            inbox.settled()
    assert seen == [1, 2, 3]


def test_release_hands_back_what_is_held_and_a_stop_ends_take(sqs: Any) -> None:
    url, _ = make_queue(sqs, "inbox-release")
    bodies = fill(sqs, url, 25)
    queue = Queue(sqs, url)
    stop = threading.Event()
    with Heartbeat(queue, visibility=60) as beat, Inbox(queue, beat, wait=1, visibility=60, hold=10,
                                                        interrupt=stop) as inbox:
        first = inbox.take(limit=5, window=0.5, idle=5)
        deadline = time.monotonic() + 10
        while inbox.received < 15 and time.monotonic() < deadline:
            time.sleep(0.05)  # held: 10 more than the 5 taken
        stop.set()
        held = inbox.release()
    assert len(first) == 5 and len(held) >= 10
    assert len({m.body for m in [*first, *held]}) == len(first) + len(held)  # none twice
    assert {m.body for m in [*first, *held]} <= set(bodies)


def test_a_failed_receive_is_raised_after_what_came_before(sqs: Any) -> None:
    url, _ = make_queue(sqs, "inbox-gone")
    fill(sqs, url, 3)
    queue = Queue(sqs, url)
    with Heartbeat(queue, visibility=60) as beat, Inbox(queue, beat, wait=1, visibility=60, hold=3) as inbox:
        deadline = time.monotonic() + 10
        while inbox.received < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        sqs.delete_queue(QueueUrl=url)  # the next receive fails: no such queue
        batch = inbox.take(limit=3, window=0, idle=5)
        assert len(batch) == 3
        with pytest.raises(AnalyzerError, match=r"no such queue|NonExistentQueue|QueueDoesNotExist"):
            while True:
                inbox.take(limit=3, window=0, idle=5)


def test_a_stop_ends_a_take_waiting_on_an_empty_queue(sqs: Any) -> None:
    url, _ = make_queue(sqs, "inbox-empty")
    queue = Queue(sqs, url)
    stop = threading.Event()
    with Heartbeat(queue, visibility=60) as beat, Inbox(queue, beat, wait=1, visibility=60, hold=10,
                                                        interrupt=stop) as inbox:
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        assert inbox.take(limit=10, window=1, idle=20) == []
        assert time.monotonic() - started < 2  # seen within a slice, not after idle
