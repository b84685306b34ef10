"""`analyzer watch` end to end on the moto server (S3, SQS, SNS, EventBridge over HTTP): objects put,
notifications delivered the ways AWS delivers them, `watch --once` ingests, detects and posts the alerts
to a local webhook; redelivery, duplicates, poison messages, the Lambda entry point, kill -9, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqs_notices import (
    ACCOUNT,
    Hook,
    counts,
    eventbridge_event,
    make_queue,
    put_log,
    s3_event,
    s3_test_event,
    signin,
    sns_envelope,
)
from typer.testing import CliRunner

from analyzer.alerts.state import AlertState
from analyzer.cli import app
from analyzer.jobs import watch as watch_module
from analyzer.jobs.watch import handle_s3_event
from analyzer.store.dataset import Dataset

from s3_server import S3Server, ThrottleProxy, cloudtrail_key, dataset_rows

HOOK_ENV = "TEST_WATCH_WEBHOOK_URL"
BUCKET = "trail"
WHEN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Aws:
    """The bucket, a queue with its dead-letter queue, and the clients, on the moto server."""

    server: S3Server
    s3: Any
    sqs: Any
    sns: Any
    events: Any
    queue: str
    dlq: str
    sent: list[str] = field(default_factory=list)

    def arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def send(self, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=text)
        self.sent.append(text)

    def bodies(self, url: str) -> list[str]:
        """Every message body on a queue (received with a short visibility, not deleted)."""
        found: list[str] = []
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        ).get("Messages"):
            found += [m["Body"] for m in batch]
        return found


@pytest.fixture
def aws(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Aws:
    options = {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"}
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs", **options)
    url, dlq = make_queue(sqs, "ct-new-logs", max_receive=2, visibility=30)
    return Aws(s3, client, sqs, boto3.client("sns", **options), boto3.client("events", **options), url, dlq)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    with Hook() as server:
        monkeypatch.setenv(HOOK_ENV, server.url)
        yield server


def write_config(tmp_path: Path, **watch: Any) -> Path:
    table = {"retry_after": '"0s"', "batch_window": "0.2", **{k: str(v) for k, v in watch.items()}}
    lines = [
        "[watch]",
        *(f"{k} = {v}" for k, v in table.items()),
        "",
        "[notify.webhook]",
        f'url_env = "{HOOK_ENV}"',
        "include_alerts = true",
        "timeout = 2",
        "",
    ]
    path = tmp_path / "analyzer.toml"
    path.write_text("\n".join(lines))
    return path


def watch_args(aws: Aws, data: Path, config: Path, *more: str) -> list[str]:
    return [
        "watch",
        "--queue-url",
        aws.queue,
        "--data",
        str(data),
        "--wait-time",
        "1",
        "--endpoint-url",
        aws.server.endpoint_url,
        "--config",
        str(config),
        *more,
    ]


def watch(runner: CliRunner, aws: Aws, data: Path, config: Path, *more: str) -> Any:
    return runner.invoke(app, watch_args(aws, data, config, "--once", *more))


def announce(aws: Aws, made: list[tuple[str, str, int, list[str]]]) -> None:
    """Each object's own S3 → SQS notification onto the queue."""
    for key, etag, size, _ in made:
        aws.send(s3_event(BUCKET, key, etag, size))


def key_at(when: datetime, unique: str, prefix: str = "") -> str:
    return cloudtrail_key(ACCOUNT, "us-east-1", when, unique=unique, prefix=prefix)


def put_signins(
    aws: Aws, count: int, *, prefix: str = "", start: int = 0, mfa: str = "No", per_object: int = 1
) -> list[tuple[str, str, int, list[str]]]:
    """``count`` log objects, each of ``per_object`` console sign-ins by its own user (without MFA: one
    alert per object); (key, etag, size, event ids) each."""
    made = []
    for index in range(start, start + count):
        when = WHEN + timedelta(minutes=index)
        records = [signin(when + timedelta(seconds=n), user=f"user{index:03d}", mfa=mfa) for n in range(per_object)]
        key = key_at(when, f"{index:016X}", prefix)
        etag, size = put_log(aws.s3, BUCKET, key, records)
        made.append((key, etag, size, [r["eventID"] for r in records]))
    return made


def event_ids(data: Path) -> list[str]:
    return [row[0] for row in dataset_rows(data)]


def alert_users(hook: Hook) -> Counter[str]:
    """How many console-login-without-mfa alerts the webhook got, by user (one alert per sign-in)."""
    return Counter(str(a["user_name"]) for a in hook.alerts() if a["detection_id"] == "console-login-without-mfa")


def posted_once(hook: Hook) -> bool:
    """No alert (fingerprint) was posted twice."""
    return max(Counter(a["fingerprint"] for a in hook.alerts()).values(), default=1) == 1


def failing_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("failing: ")]


# -- the three notification forms, as moto's S3 sends them -------------------------------------------------------------
def route(aws: Aws, form: str) -> None:
    """Wire the bucket to the queue: directly, through SNS (raw or wrapped), or through EventBridge."""
    queue_arn = aws.arn(aws.queue)
    if form == "s3":
        config: dict[str, Any] = {"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]}
    elif form in ("sns-raw", "sns-wrapped"):
        topic = aws.sns.create_topic(Name="ct-new-logs")["TopicArn"]
        raw = {"RawMessageDelivery": "true"} if form == "sns-raw" else {}
        aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes=raw)
        config = {"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]}
    else:
        aws.events.put_rule(
            Name="ct-new-logs",
            EventPattern=json.dumps(
                {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [BUCKET]}}}
            ),
        )
        aws.events.put_targets(Rule="ct-new-logs", Targets=[{"Id": "queue", "Arn": queue_arn}])
        config = {"EventBridgeConfiguration": {}}
    aws.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=config)


@pytest.mark.parametrize("form", ["s3", "sns-raw", "sns-wrapped", "eventbridge"])
def test_each_notification_form_is_ingested_and_alerted(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook, form: str
) -> None:
    """Objects put → the bucket's own notifications → watch --once: the logs are in the dataset, the alerts
    at the webhook, the test event and the key that is not a CloudTrail log skipped, the queue empty."""
    route(aws, form)
    made = put_signins(aws, 2, prefix="org trail+x")  # a space and a plus: URL-encoded in S3's notifications
    made += put_signins(aws, 1, start=2, mfa="Yes")  # no alert
    aws.s3.put_object(Bucket=BUCKET, Key=f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/notes.txt", Body=b"hello")
    data = tmp_path / "data"
    result = watch(runner, aws, data, write_config(tmp_path))
    assert result.exit_code == 3, result.output  # high alerts announced, nothing failing
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({"user000": 1, "user001": 1}) and posted_once(hook)
    tests = 0 if form == "eventbridge" else 1  # S3 tests a new queue or topic configuration; EventBridge does not
    assert "3 ingested, 0 already in the dataset, 1 skipped (not CloudTrail logs), 0 failed" in result.output
    assert f"; {tests} test events;" in result.output
    assert counts(aws.sqs, aws.queue) == (0, 0)
    assert counts(aws.sqs, aws.dlq) == (0, 0)


# -- exactly once ------------------------------------------------------------------------------------------------------
def notices(aws: Aws, made: list[tuple[str, str, int, list[str]]]) -> list[Any]:
    """Each object announced four times: S3 → SQS, SNS wrapped, SNS raw and EventBridge."""
    out: list[Any] = []
    for key, etag, size, _ in made:
        direct = s3_event(BUCKET, key, etag, size)
        out += [direct, sns_envelope(direct), json.dumps(direct), eventbridge_event(BUCKET, key, etag, size)]
    return out


@pytest.mark.parametrize("batch_messages", [100, pytest.param(1, marks=pytest.mark.slow)])
def test_redelivered_and_duplicate_messages_ingest_nothing_twice(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook, batch_messages: int
) -> None:
    """Every object announced in four envelopes (in one batch, or one message a batch), then everything
    delivered again after it was deleted: each event once in the dataset, each alert posted once."""
    made = put_signins(aws, 3, per_object=2)
    for body in notices(aws, made):
        aws.send(body)
    data, config = tmp_path / "data", write_config(tmp_path, batch_messages=batch_messages)
    first = watch(runner, aws, data, config)
    assert first.exit_code == 3, first.output
    assert "3 ingested, " in first.output
    ids = [i for *_, found in made for i in found]
    assert sorted(event_ids(data)) == sorted(ids)
    assert alert_users(hook) == Counter({"user000": 2, "user001": 2, "user002": 2}) and posted_once(hook)
    assert counts(aws.sqs, aws.queue) == (0, 0)

    for body in list(aws.sent):  # a redelivery of everything (S3 and EventBridge deliver at least once)
        aws.send(body)
    again = watch(runner, aws, data, config)
    assert again.exit_code == 0, again.output  # nothing new announced
    assert "0 ingested, " in again.output and "0 failed" in again.output
    assert sorted(event_ids(data)) == sorted(ids)
    assert alert_users(hook) == Counter({"user000": 2, "user001": 2, "user002": 2}) and posted_once(hook)
    assert counts(aws.sqs, aws.queue) == (0, 0)


def test_a_trails_own_sns_delivery_notification_is_ingested_once(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook
) -> None:
    """A trail with an SNS topic announces each delivery as {"s3Bucket", "s3ObjectKey": [...]} (keys plain,
    no ETag): watch reads the ETag itself, and the same objects announced by S3 too are ingested once."""
    made = put_signins(aws, 2, prefix="org trail+x")
    keys = [key for key, *_ in made]
    aws.send(sns_envelope({"s3Bucket": BUCKET, "s3ObjectKey": keys}))  # through SNS → SQS, wrapped
    aws.send({"s3Bucket": BUCKET, "s3ObjectKey": [keys[0]]})  # raw delivery
    key, etag, size, _ = made[1]
    aws.send(s3_event(BUCKET, key, etag, size))
    aws.send({"s3Bucket": BUCKET, "s3ObjectKey": "not a list"})  # named, left to the redrive policy
    data = tmp_path / "data"
    result = watch(runner, aws, data, write_config(tmp_path))
    assert result.exit_code == 4, result.output  # the malformed one is failing
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({"user000": 1, "user001": 1}) and posted_once(hook)
    assert any("s3ObjectKey is not a list" in line for line in failing_lines(result.output)), result.output


def test_a_rewritten_object_is_ingested_at_its_new_etag(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook
) -> None:
    """A notification names an object at an ETag: an object put again under the same key (new content) is
    a new version, ingested again (as pull does); the old notification redelivered ingests nothing."""
    ((key, etag, size, ids),) = put_signins(aws, 1)
    aws.send(s3_event(BUCKET, key, etag, size))
    data, config = tmp_path / "data", write_config(tmp_path)
    assert watch(runner, aws, data, config).exit_code == 3
    extra = signin(WHEN + timedelta(minutes=5), user="late")
    new_etag, new_size = put_log(aws.s3, BUCKET, key, [signin(WHEN, user="user000", event_id=ids[0]), extra])
    aws.send(s3_event(BUCKET, key, new_etag, new_size))
    result = watch(runner, aws, data, config)
    assert result.exit_code == 3, result.output
    assert "1 ingested" in result.output
    assert sorted(set(event_ids(data))) == sorted([ids[0], extra["eventID"]])
    assert alert_users(hook) == Counter({"user000": 1, "late": 1}) and posted_once(hook)


# -- what is not ingested ----------------------------------------------------------------------------------------------
def test_poison_messages_stay_on_the_queue_named_then_go_to_the_dlq(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook
) -> None:
    """An unparsable body, a notification of a missing object and one of an object that does not decode are
    not deleted: each is reported with its reason and receive count, until the redrive policy
    (maxReceiveCount 2) moves it to the dead-letter queue. A test event and a key that is no CloudTrail
    log are skipped and deleted; the good object beside them is ingested."""
    ((key, etag, size, ids),) = put_signins(aws, 1)
    missing = key_at(WHEN, "MISSING000000000")
    broken = key_at(WHEN, "BROKEN0000000000")
    broken_etag = aws.s3.put_object(Bucket=BUCKET, Key=broken, Body=b"\x1f\x8b this is not gzip")["ETag"]
    poison = [
        "{not json",
        json.dumps(s3_event(BUCKET, missing, "0" * 32, 100)),
        json.dumps(s3_event(BUCKET, broken, broken_etag.strip('"'), 20)),
    ]
    for body in [
        *poison,
        s3_event(BUCKET, key, etag, size),
        s3_test_event(BUCKET),
        s3_event(BUCKET, "uploads/report.csv", "2" * 32, 10),
    ]:
        aws.send(body)
    data, config = tmp_path / "data", write_config(tmp_path)
    result = watch(runner, aws, data, config)
    assert result.exit_code == 4, result.output  # partial: messages left failing
    assert sorted(event_ids(data)) == ids
    assert alert_users(hook) == Counter({"user000": 1})
    failing = failing_lines(result.output)
    # retry_after = 0s: each poison message comes straight back, is received twice, then moved to the DLQ
    assert len(failing) == 2 * len(poison), result.output
    assert sum("received 2x" in line for line in failing) == len(poison)
    assert sum("not a notification: not JSON" in line for line in failing) == 2
    assert sum(missing in line and "cannot read: no such object" in line for line in failing) == 2, failing
    assert sum(broken in line and "gzip" in line.lower() for line in failing) == 2, failing
    assert "1 skipped (not CloudTrail logs)" in result.output and "1 test events" in result.output
    assert counts(aws.sqs, aws.queue) == (0, 0)
    assert sorted(aws.bodies(aws.dlq)) == sorted(poison)


def test_a_message_is_deleted_only_after_its_objects_are_committed(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At every DeleteMessageBatch the objects its messages name are already in the manifest."""
    from analyzer.sources import sqs as sqs_module

    made = put_signins(aws, 4)
    by_body: dict[str, str] = {}
    for key, etag, size, _ in made:
        body = json.dumps(s3_event(BUCKET, key, etag, size))
        by_body[body] = f"s3://{BUCKET}/{key}"
        aws.send(body)
    data = tmp_path / "data"
    seen: list[tuple[str, bool]] = []
    delete = sqs_module.Queue.delete

    def observed(self: Any, messages: Any) -> Any:
        with Dataset(data) as dataset:
            for message in messages:
                uri = by_body[message.body]
                version = next(etag for key, etag, *_ in made if uri.endswith(key))
                seen.append((uri, uri in dataset.manifest.done([(uri, version)])))
        return delete(self, messages)

    monkeypatch.setattr(sqs_module.Queue, "delete", observed)
    result = watch(runner, aws, data, write_config(tmp_path, batch_messages=2))
    assert result.exit_code == 3, result.output
    assert sorted(uri for uri, _ in seen) == sorted(by_body.values())
    assert all(committed for _, committed in seen), seen


def test_a_long_batch_keeps_its_messages_invisible(runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """A batch waiting 4s for another writer, with a 2s visibility timeout: the heartbeat extends it, so a
    second consumer polling meanwhile receives nothing, and the batch then lands and is deleted."""
    import threading

    made = put_signins(aws, 2)
    announce(aws, made)
    data = tmp_path / "data"
    stolen: list[str] = []
    held = threading.Event()

    def other_writer_and_consumer() -> None:
        with Dataset(data) as dataset:
            dataset.lock()
            held.set()
            wait_for(lambda: counts(aws.sqs, aws.queue) == (0, 2), 30, "the watch to receive the messages")
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                response = aws.sqs.receive_message(QueueUrl=aws.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                for message in response.get("Messages") or []:
                    stolen.append(message["Body"])  # left as received: visible again later
                time.sleep(0.2)

    thread = threading.Thread(target=other_writer_and_consumer)
    thread.start()
    held.wait(10)
    try:
        result = watch(runner, aws, data, write_config(tmp_path), "--visibility-timeout", "2")
    finally:
        thread.join()
    assert stolen == []
    assert result.exit_code == 3, result.output
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert counts(aws.sqs, aws.queue) == (0, 0)


def test_small_batches_are_compacted_by_file_count(runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """One object a batch, [watch] compact_files = 2: the day never holds more than a few files."""
    made = put_signins(aws, 6)
    announce(aws, made)
    data = tmp_path / "data"
    result = watch(runner, aws, data, write_config(tmp_path, batch_messages=1, compact_files=2))
    assert result.exit_code == 3, result.output
    files = list(data.glob("event_date=*/*.parquet"))
    assert 1 <= len(files) <= 3, files
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)


def test_days_that_become_due_while_the_queue_is_quiet_are_compacted(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook
) -> None:
    """compact_after is an age: the last batches before a quiet spell leave small files that are due only
    later. A watch with nothing to receive compacts them (before, only a batch that ingested did)."""
    made = put_signins(aws, 4)
    announce(aws, made)
    data = tmp_path / "data"
    first = watch(runner, aws, data, write_config(tmp_path, batch_messages=1, compact_after='"1h"'))
    assert first.exit_code == 3, first.output
    assert len(list(data.glob("event_date=*/*.parquet"))) == len(made)  # not due yet: one small file a batch
    quiet = watch(runner, aws, data, write_config(tmp_path, compact_after='"0s"'))  # an hour later, say
    assert quiet.exit_code == 0, quiet.output
    assert len(list(data.glob("event_date=*/*.parquet"))) == 1
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)


def test_a_backlog_is_worked_off_in_full_batches(runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """15 notifications waiting and no batch window: a receive that comes back full (ten) goes on filling
    the batch, so the backlog is one batch, one detection pass and one webhook post (before: two, one a
    receive); every event and alert once."""
    made = put_signins(aws, 15)
    announce(aws, made)
    data = tmp_path / "data"
    result = watch(runner, aws, data, write_config(tmp_path, batch_window=0, batch_messages=100))
    assert result.exit_code == 3, result.output
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({f"user{n:03d}": 1 for n in range(15)}) and posted_once(hook)
    assert len(hook.bodies) == 1, [len(body.get("alerts", [])) for body in hook.bodies]
    assert counts(aws.sqs, aws.queue) == (0, 0)


# -- the queue itself failing -----------------------------------------------------------------------------------------
def through(proxy: ThrottleProxy, aws: Aws, data: Path, config: Path) -> list[str]:
    """watch --once's arguments, reaching SQS and S3 through ``proxy``."""
    args = watch_args(aws, data, config, "--once")
    args[args.index("--endpoint-url") + 1] = proxy.endpoint_url
    return args


def test_a_queue_that_fails_for_a_while_is_waited_out(runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """ReceiveMessage throttled for longer than the client's own retries (five tries): the receive is tried
    again after a second, named in a warning, and the watch goes on: every object ingested, every alert
    posted once, the queue empty (before, the watch stopped with exit 1)."""
    made = put_signins(aws, 2)
    announce(aws, made)
    data = tmp_path / "data"
    with ThrottleProxy(aws.server.endpoint_url, {"ReceiveMessage": 6}) as proxy:
        result = runner.invoke(app, through(proxy, aws, data, write_config(tmp_path)))
    assert result.exit_code == 3, result.output
    assert proxy.throttled["ReceiveMessage"] == 6
    assert "receive failed" in result.output and "ThrottlingException" in result.output
    assert "retrying in 1s" in result.output
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({"user000": 1, "user001": 1}) and posted_once(hook)
    assert counts(aws.sqs, aws.queue) == (0, 0)


def test_a_queue_that_keeps_failing_stops_the_watch_in_one_line(
    runner: CliRunner, tmp_path: Path, aws: Aws, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its patience (made short here) a failing receive stops the watch: exit 1, one line naming the
    queue and the error, nothing ingested, the message still on the queue for the next run."""
    ((key, etag, size, _),) = put_signins(aws, 1)
    aws.send(s3_event(BUCKET, key, etag, size))
    monkeypatch.setattr(watch_module, "QUEUE_PATIENCE_ONCE", 0.5)
    with ThrottleProxy(aws.server.endpoint_url, {"ReceiveMessage": -1}) as proxy:
        result = runner.invoke(app, through(proxy, aws, tmp_path / "data", write_config(tmp_path)))
    assert result.exit_code == 1, result.output
    assert aws.queue in result.output and "ThrottlingException" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists() or event_ids(tmp_path / "data") == []
    assert counts(aws.sqs, aws.queue) == (1, 0)


# -- the Lambda entry point --------------------------------------------------------------------------------------------
def lambda_sqs_event(bodies: list[str]) -> dict[str, Any]:
    """What an SQS trigger hands a Lambda function."""
    return {
        "Records": [
            {
                "messageId": f"m-{index}",
                "receiptHandle": f"r-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:ct-new-logs",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def test_handle_s3_event_on_lambda_shaped_events(tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """S3 → Lambda (the notification itself), SNS → Lambda and SQS → Lambda (records settled one by one: the
    partial-batch response names only the failing record); a repeat ingests and announces nothing."""
    made = put_signins(aws, 4)
    data = tmp_path / "data"
    config = {"notify": {"webhook": {"url_env": HOOK_ENV, "include_alerts": True}}}
    (k0, e0, s0, _), (k1, e1, s1, _), (k2, e2, s2, _), (k3, e3, s3, _) = made
    direct = handle_s3_event(s3_event(BUCKET, k0, e0, s0), data, s3_client=aws.s3, config=config)
    assert direct.ok and direct.batch.stats.ingested == 1 and direct.announced == 1
    sns_trigger = {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {"Type": "Notification", "Message": json.dumps(eventbridge_event(BUCKET, k1, e1, s1))},
            }
        ]
    }
    via_sns = handle_s3_event(sns_trigger, data, s3_client=aws.s3, config=config)
    assert via_sns.ok and via_sns.batch.stats.ingested == 1
    sqs_trigger = lambda_sqs_event(
        [json.dumps(s3_event(BUCKET, k2, e2, s2)), "garbage", json.dumps(sns_envelope(s3_event(BUCKET, k3, e3, s3)))]
    )
    via_sqs = handle_s3_event(sqs_trigger, data, s3_client=aws.s3, config=config)
    assert via_sqs.batch_item_failures() == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert via_sqs.batch.stats.ingested == 2 and not via_sqs.ok
    with pytest.raises(Exception, match="m-1: not a notification"):
        via_sqs.raise_for_failures()
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({f"user{n:03d}": 1 for n in range(4)})
    repeat = handle_s3_event(sqs_trigger, data, s3_client=aws.s3, config=config)
    assert repeat.batch.stats.ingested == 0 and repeat.announced == 0
    assert len(event_ids(data)) == 4 and sum(alert_users(hook).values()) == 4


# -- crashes and signals: a watch subprocess ---------------------------------------------------------------------------
def spawn(aws: Aws, data: Path, config: Path, *more: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "analyzer", *watch_args(aws, data, config, *more)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def manifest_objects(data: Path) -> int:
    import sqlite3

    path = data / "_analyzer" / "manifest.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("select count(*) from objects").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_9_mid_batch_then_a_restart_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, aws: Aws, hook: Hook
) -> None:
    made = put_signins(aws, 24, per_object=3)
    announce(aws, made)
    data = tmp_path / "data"
    config = write_config(tmp_path, batch_messages=4, batch_window=0)
    first = spawn(aws, data, config, "--visibility-timeout", "3", "--quiet")
    try:
        wait_for(lambda: manifest_objects(data) >= 4 or first.poll() is not None, 60, "a first batch")
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    ingested_before = manifest_objects(data)
    assert 4 <= ingested_before < len(made)  # killed with work left
    wait_for(lambda: counts(aws.sqs, aws.queue)[1] == 0, 30, "the killed watch's messages to become visible")
    runner = CliRunner()
    again = watch(runner, aws, data, config)
    assert again.exit_code == 3, again.output
    ids = [i for *_, found in made for i in found]
    assert sorted(event_ids(data)) == sorted(ids)  # nothing lost, nothing doubled
    users = alert_users(hook)
    assert users.keys() == {f"user{n:03d}" for n in range(len(made))}
    assert all(count >= 3 for count in users.values())
    with AlertState(data) as state:  # one alert each in the state (a post killed before its record may repeat)
        (rows,) = state.db.execute(
            "select count(*) from alerts where detection_id = ?", ("console-login-without-mfa",)
        ).fetchone()
    assert rows == len(ids)
    assert counts(aws.sqs, aws.queue) == (0, 0) and counts(aws.sqs, aws.dlq) == (0, 0)


@pytest.mark.slow
def test_sigterm_releases_in_flight_messages_for_the_next_run(tmp_path: Path, aws: Aws, hook: Hook) -> None:
    """A batch waiting for another writer when SIGTERM comes is released (visible again at once, not after
    the visibility timeout): exit 130, and the next run ingests it."""
    made = put_signins(aws, 3)
    announce(aws, made)
    data = tmp_path / "data"
    config = write_config(tmp_path)
    with Dataset(data) as dataset:
        dataset.lock()  # another writer (a nightly pull) holds the dataset
        process = spawn(aws, data, config, "--visibility-timeout", "600")
        try:
            wait_for(lambda: counts(aws.sqs, aws.queue) == (0, 3), 60, "the messages in flight")
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, output
    assert "3 messages released" in output and "stopped: in-flight messages finished or released" in output
    assert counts(aws.sqs, aws.queue) == (3, 0)  # visible at once: the visibility timeout is 600s
    assert event_ids(data) == []
    result = watch(CliRunner(), aws, data, config)
    assert result.exit_code == 3, result.output
    assert sorted(event_ids(data)) == sorted(i for *_, ids in made for i in ids)
    assert alert_users(hook) == Counter({f"user{n:03d}": 1 for n in range(3)})
