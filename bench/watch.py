"""bench/watch.py: how soon `analyzer watch` alerts, and how fast it ingests, on the moto server.

    python bench/watch.py [--objects 200] [--rate 4] [--throughput-objects 200] [--events-per-object 500]

1. **Latency.** A moto server (its own process: S3, SQS) with the bucket's notifications sent to a queue
   (S3 → SQS, as AWS sends them); ``analyzer watch`` runs as a service would (long polling, 20 s, default
   batching) and posts to a local webhook. The bench puts ``--objects`` log objects at ``--rate`` a
   second, each holding a console sign-in without MFA by its own user (one alert each); the latency of an
   object is from just before its PutObject to the webhook's receipt of its alert. p50, p95, max.
2. **Throughput.** ``--throughput-objects`` objects of ``--events-per-object`` events put (notifications
   queued), then ``analyzer watch --once`` drains the queue; the same objects, written to a folder, are
   ingested by ``analyzer ingest`` (same run, same ``--workers``): events per second of each (wall time of
   the whole command, start-up included), and the ratio; then a watch already running is sent every
   notification at once (a fresh dataset): events per second from the first send to the last alert.

Figures are printed with ``uptime``'s load average (the machine is shared: ratios matter). Targets: p95 <= 5 s;
watch's throughput >= 50% of ingest's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sqs_notices import ACCOUNT, Hook, counts, s3_event, signin  # noqa: E402

from s3_server import cloudtrail_key, log_bytes, make_events  # noqa: E402

SERVER = """
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.WARNING)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
time.sleep(float(sys.argv[1]))
"""
HOOK_ENV = "BENCH_WATCH_WEBHOOK_URL"
BUCKET = "trail"
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def start_moto(ttl: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ttl)], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{int(process.stdout.readline())}"


def clients(endpoint: str) -> tuple[Any, Any]:
    options = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
    }
    return boto3.client("s3", **options), boto3.client("sqs", **options)


def wire(s3: Any, sqs: Any, name: str) -> str:
    """A bucket whose ObjectCreated notifications go to a queue of its own (its test event drained)."""
    s3.create_bucket(Bucket=name)
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    sqs.purge_queue(QueueUrl=url)  # the s3:TestEvent
    return url


def environment(endpoint: str, hook_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANALYZER_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": endpoint,
            HOOK_ENV: hook_url,
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def config(folder: Path, workers: int, batch_messages: int | None = None) -> Path:
    path = folder / "analyzer.toml"
    path.write_text(
        "\n".join(
            [
                "[watch]",
                f"workers = {workers}",
                *([f"batch_messages = {batch_messages}"] if batch_messages else []),
                "",
                "[notify.webhook]",
                f'url_env = "{HOOK_ENV}"',
                "include_alerts = true",
                "max_alerts = 1000",
                "",
            ]
        )
    )
    return path


def watch_command(url: str, data: Path, conf: Path, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "analyzer",
        "watch",
        "--queue-url",
        url,
        "--data",
        str(data),
        "--config",
        str(conf),
        "--quiet",
        *more,
    ]


def latency(args: argparse.Namespace, endpoint: str, work: Path, hook: Hook) -> list[float]:
    s3, sqs = clients(endpoint)
    url = wire(s3, sqs, "latency")
    conf = config(work, args.workers, args.batch_messages)
    env = environment(endpoint, hook.url)
    process = subprocess.Popen(
        watch_command(url, work / "latency-data", conf),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    put_at: dict[str, float] = {}
    try:
        time.sleep(args.warmup)  # start-up (imports, the first long poll) is not latency
        interval = 1.0 / args.rate
        next_put = time.monotonic()
        for index in range(args.objects):
            when = START + timedelta(seconds=index)
            user = f"bench{index:05d}"
            body = log_bytes([signin(when, user=user)])
            key = cloudtrail_key(ACCOUNT, "us-east-1", when, unique=f"{index:016X}")
            delay = next_put - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_put += interval
            put_at[user] = time.time()
            s3.put_object(Bucket="latency", Key=key, Body=body)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(received(hook)) >= len(put_at):
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
    seen = received(hook)
    missing = sorted(set(put_at) - set(seen))
    if missing:
        print(f"  {len(missing)} alert(s) never arrived (first: {missing[0]})", flush=True)
        if process.stderr is not None:
            print(process.stderr.read()[-2000:])
    return sorted(seen[user] - put_at[user] for user in put_at if user in seen)


def received(hook: Hook) -> dict[str, float]:
    """The first time the webhook got each user's alert."""
    first: dict[str, float] = {}
    with hook.lock:
        for body, at in zip(hook.bodies, hook.times, strict=True):
            for alert in body.get("alerts", []):
                if alert.get("detection_id") == "console-login-without-mfa" and alert.get("user_name"):
                    first.setdefault(str(alert.get("user_name")), at)
    return first


def throughput(args: argparse.Namespace, endpoint: str, work: Path, hook: Hook) -> tuple[float, float, float, int]:
    """(watch --once events/s, the running watch's events/s, ingest events/s, events)."""
    s3, sqs = clients(endpoint)
    url = wire(s3, sqs, "throughput")
    rng = random.Random(7)
    local = work / "logs"
    events = 0
    notices: list[str] = []
    for index in range(args.throughput_objects):
        when = START + timedelta(minutes=index)
        records = make_events(rng, args.events_per_object, ACCOUNT, "us-east-1", when)
        records.append(signin(when, user=f"through{index:05d}"))
        events += len(records)
        body = log_bytes(records)
        key = cloudtrail_key(ACCOUNT, "us-east-1", when, unique=f"{index:016X}")
        etag = s3.put_object(Bucket="throughput", Key=key, Body=body)["ETag"].strip('"')
        notices.append(json.dumps(s3_event("throughput", key, etag, len(body))))
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    visible, _ = counts(sqs, url)
    assert visible == args.throughput_objects, (visible, args.throughput_objects)
    conf = config(work, args.workers, args.batch_messages)
    env = environment(endpoint, hook.url)
    started = time.perf_counter()
    done = subprocess.run(
        watch_command(url, work / "watch-data", conf, "--once", "--wait-time", "1"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    watch_seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"watch --once exited {done.returncode}: {done.stderr[-2000:]}")
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "analyzer",
            "ingest",
            str(local),
            "--data",
            str(work / "ingest-data"),
            "--workers",
            str(args.workers),
            "--quiet",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    ingest_seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest exited {done.returncode}: {done.stderr[-2000:]}")
    service_seconds = running(args, endpoint, work, hook, notices)
    floor_seconds = bare_consumer(endpoint, notices)
    return events / watch_seconds, events / service_seconds, events / ingest_seconds, events / floor_seconds, events


def send_all(sqs: Any, url: str, bodies: list[str]) -> None:
    """Every body onto the queue, ten a request (SendMessageBatch's most)."""
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])],
        )


def bare_consumer(endpoint: str, notices: list[str]) -> float:
    """The moto server's own floor: seconds for a consumer that does nothing else to drain the same
    notifications (ReceiveMessage ten at a time, GetObject of each object on 8 threads, DeleteMessageBatch).
    moto scans its whole queue for every message it returns (measured: 3 ms for a receive of 10 from a
    queue of 10, 226 ms from a queue of 400), which SQS does not: watch cannot be faster than this here."""
    from concurrent.futures import ThreadPoolExecutor

    s3, sqs = clients(endpoint)
    url = sqs.create_queue(QueueName="floor", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    send_all(sqs, url, notices)

    def get(body: str) -> int:
        record = json.loads(body)["Records"][0]["s3"]
        return len(s3.get_object(Bucket=record["bucket"]["name"], Key=record["object"]["key"])["Body"].read())

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages"
        ):
            list(pool.map(get, [m["Body"] for m in messages]))
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return time.perf_counter() - started


def running(args: argparse.Namespace, endpoint: str, work: Path, hook: Hook, notices: list[str]) -> float:
    """A watch already running (started, first long poll under way) is sent every notification at once:
    seconds from the first send to the webhook's receipt of the last object's alert."""
    _, sqs = clients(endpoint)
    url = sqs.create_queue(QueueName="running", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    with hook.lock:
        hook.bodies.clear()
        hook.times.clear()
    env = environment(endpoint, hook.url)
    process = subprocess.Popen(
        watch_command(url, work / "running-data", config(work, args.workers, args.batch_messages)),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(args.warmup)
        started = time.time()
        send_all(sqs, url, notices)
        deadline = time.monotonic() + 300
        while len(received(hook)) < len(notices) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = received(hook)
        if len(seen) < len(notices):
            raise SystemExit(f"the running watch alerted on {len(seen)} of {len(notices)} objects")
        return max(seen.values()) - started
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=200, help="objects put for the latency (one alert each)")
    p.add_argument("--rate", type=float, default=4.0, help="objects put per second")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds the watch gets to start before the first put")
    p.add_argument("--throughput-objects", type=int, default=200)
    p.add_argument("--events-per-object", type=int, default=500)
    p.add_argument("--workers", type=int, default=1, help="[watch] workers and ingest --workers")
    p.add_argument("--batch-messages", type=int, help="[watch] batch_messages (default: watch's own)")
    p.add_argument("--ttl", type=float, default=900, help="the moto server stops by itself after this many seconds")
    args = p.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    server, endpoint = start_moto(args.ttl)
    work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        with Hook() as hook:
            print(f"latency: {args.objects} objects at {args.rate:g}/s, watch long-polling (20 s) ...", flush=True)
            seconds = latency(args, endpoint, work, hook)
            if seconds:
                print(
                    f"  PutObject -> alert at the webhook: p50 {statistics.median(seconds):.2f} s, "
                    f"p95 {percentile(seconds, 0.95):.2f} s, max {max(seconds):.2f} s, min {min(seconds):.2f} s "
                    f"({len(seconds)}/{args.objects} alerts; target p95 <= 5 s)",
                    flush=True,
                )
            print(
                f"throughput: {args.throughput_objects} objects x {args.events_per_object + 1} events ...", flush=True
            )
            once_rate, running_rate, ingest_rate, floor_rate, events = throughput(args, endpoint, work, hook)
            print(
                f"  {events:,} events; analyzer ingest (a local copy, start-up included): {ingest_rate:,.0f} "
                f"events/s\n"
                f"  watch --once (start-up and the last empty poll included; S3 + SQS + detect + notify): "
                f"{once_rate:,.0f} events/s, {once_rate / ingest_rate:.0%} of ingest\n"
                f"  a running watch (every notification sent at once -> the last alert): {running_rate:,.0f} "
                f"events/s, {running_rate / ingest_rate:.0%} of ingest (target >= 50%)\n"
                f"  moto's floor (receive + get + delete, nothing else): {floor_rate:,.0f} events/s, "
                f"{floor_rate / ingest_rate:.0%} of ingest; watch --once reaches {once_rate / floor_rate:.0%} "
                f"of it, a running watch {running_rate / floor_rate:.0%}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    print(json.dumps({"load": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
