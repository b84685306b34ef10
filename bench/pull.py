"""`analyzer pull` throughput against a local S3 server, beside `analyzer ingest` of the same files.

    python bench/pull.py [--events 520000] [--per-file 17] [--workers 32] [--servers moto,static]

In one run: generates (and caches under bench/out/) a corpus of >= 20,000 small gzipped CloudTrail
objects in the S3 key layout (``synth``) and times ``analyzer ingest`` of it from local
disk (the reference throughput). Then, for each server, in its own process on 127.0.0.1:

- ``moto`` (the tests' S3 server): the corpus uploaded to it concurrently over HTTP;
- ``static``: a minimal in-memory S3 stand-in (ListObjectsV2, GetObject) with keep-alive, to show
  what the pull does when the server is not the bottleneck;

it times raw GetObject with a thread pool over a sample of the keys and a raw listing of the bucket
(what the server can serve at all), ``analyzer pull`` cold (a fresh dataset), then again with
nothing new (the no-op incremental run, same window: all the objects listed again), and prints
objects/s, events/s, the pull/ingest ratio and the no-op time against the targets (cold pull
>= 60 % of local ingest; no-op <= 5 s). Servers stop by themselves after --ttl seconds.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

import boto3
from botocore.config import Config
from common import OUT, Run, run

from synth import write_corpus

BUCKET = "bench-trail"
START, DAYS = "2024-06-01", 7
WINDOW = ["--since", "2024-06-01", "--until", "2024-06-09"]  # the corpus's days, late deliveries included
SERVER = """
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no log line per request
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
time.sleep(float(sys.argv[1]))
"""


class StaticS3(BaseHTTPRequestHandler):
    """Just enough of S3 (ListObjectsV2 with delimiter and pagination, GetObject with If-Match),
    served from memory over keep-alive connections: the stand-in that shows what the pull does when
    the server is not the bottleneck (moto answers "Connection: close" and spends ~8 ms of CPU on
    each request)."""

    protocol_version = "HTTP/1.1"
    objects: ClassVar[dict[str, tuple[bytes, str]]] = {}
    keys: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/xml"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        bucket, _, key = urllib.parse.unquote(split.path).lstrip("/").partition("/")
        if not key:
            return self._list(bucket, query)
        found = self.objects.get(key)
        if found is None:
            return self._send(404, b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>")
        body, etag = found
        if (match := self.headers.get("If-Match")) and match.strip('"') != etag:
            return self._send(412, b"<Error><Code>PreconditionFailed</Code><Message>If-Match</Message></Error>")
        self._send(200, body, {"Content-Type": "application/octet-stream", "ETag": f'"{etag}"',
                               "Last-Modified": "Sat, 01 Jun 2024 00:00:00 GMT"})

    def _list(self, bucket: str, query: dict[str, str]) -> None:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        after, limit = query.get("continuation-token", ""), int(query.get("max-keys", "1000"))
        contents: list[str] = []
        prefixes: list[str] = []
        at = bisect.bisect_right(self.keys, after) if after else bisect.bisect_left(self.keys, prefix)
        last = ""
        while at < len(self.keys) and self.keys[at].startswith(prefix):
            if len(contents) + len(prefixes) >= limit:
                break
            key = self.keys[at]
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                prefixes.append(common)
                last = common + "\U0010ffff"
                at = bisect.bisect_left(self.keys, last)
                continue
            contents.append(key)
            last = key
            at += 1
        truncated = at < len(self.keys) and self.keys[at].startswith(prefix)
        parts = [f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><MaxKeys>{limit}</MaxKeys>"
                 f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
                 f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        parts += [f"<Contents><Key>{escape(k)}</Key><LastModified>2024-06-01T00:00:00.000Z</LastModified>"
                  f"<ETag>&quot;{self.objects[k][1]}&quot;</ETag><Size>{len(self.objects[k][0])}</Size>"
                  "<StorageClass>STANDARD</StorageClass></Contents>" for k in contents]
        parts += [f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        body = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + "".join(parts) + "</ListBucketResult>")
        self._send(200, body.encode())


def serve_static(root: Path, ttl: float) -> None:
    """The StaticS3 stand-in over the corpus at ``root``: prints its port, stops after ``ttl``."""
    for path in root.rglob("*.json.gz"):
        body = path.read_bytes()
        StaticS3.objects[str(path.relative_to(root))] = (body, hashlib.md5(body).hexdigest())
    StaticS3.keys = sorted(StaticS3.objects)
    server = ThreadingHTTPServer(("127.0.0.1", 0), StaticS3)
    server.daemon_threads = True
    threading.Timer(ttl, server.shutdown).start()
    print(server.server_address[1], flush=True)
    server.serve_forever()


def corpus(events: int, per_file: int, seed: int) -> Path:
    root = OUT / f"pull-corpus-{events}-{per_file}-{seed}"
    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        stats = write_corpus(root, events, seed, events_per_file=per_file, start=START, days=DAYS)
        done.write_text(f"{stats}\n")
    return root


def start_server(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def client(endpoint: str, pool: int) -> Any:
    config = Config(max_pool_connections=pool, retries={"mode": "standard", "total_max_attempts": 10})
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                        aws_secret_access_key="bench", config=config)


def timed(label: str, fn: Any) -> float:
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:,.1f} s", flush=True)
    return seconds


def manifest_counts(data: Path) -> tuple[int, int]:
    with sqlite3.connect(data / "_analyzer" / "manifest.sqlite") as db:
        files, records = db.execute(
            "select count(*), coalesce(sum(records), 0) from objects where status = 'ingested'").fetchone()
    return int(files), int(records)


def analyzer(*args: str, env: dict[str, str]) -> Run:
    result = run([sys.executable, "-m", "analyzer", *args, "--quiet"], env=env)
    if result.returncode != 0:
        raise SystemExit(f"analyzer {args[0]} exited {result.returncode}")
    return result


@dataclass
class ServerRun:
    name: str
    upload: float | None
    raw_get: float  # objects/s
    raw_list: float  # keys/s
    cold: Run
    noop: Run
    files: int
    events: int


def measure(name: str, command: list[str], root: Path, files: list[Path], args: argparse.Namespace,
            env: dict[str, str]) -> ServerRun:
    """Start a server, fill it (moto: uploaded over HTTP), then time raw GETs, a raw listing, a cold
    pull and a no-op pull against it."""
    print(f"{name}:", flush=True)
    server, endpoint = start_server(command)
    keys = [str(f.relative_to(root)) for f in files]
    data = OUT / f"pull-bench-data-{name}"
    shutil.rmtree(data, ignore_errors=True)
    try:
        s3 = client(endpoint, max(args.upload_threads, args.workers))
        up = None
        if name == "moto":
            s3.create_bucket(Bucket=BUCKET)

            def upload() -> None:
                with ThreadPoolExecutor(args.upload_threads) as pool:
                    list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=str(f.relative_to(root)),
                                                          Body=f.read_bytes()), files))

            up = timed(f"upload ({args.upload_threads} threads)", upload)
        sample = random.Random(1).sample(keys, min(args.sample, len(keys)))

        def raw_get() -> None:
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(lambda k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read(), sample))

        get_seconds = timed(f"raw GetObject of {len(sample):,} objects ({args.workers} threads)", raw_get)

        def raw_list() -> None:
            listed = sum(len(page.get("Contents", [])) for page in
                         s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="AWSLogs/"))
            assert listed == len(keys), (listed, len(keys))

        list_seconds = timed("raw listing of the whole bucket (one thread)", raw_list)
        pull_args = ["pull", f"s3://{BUCKET}", "--data", str(data), *WINDOW, "--endpoint-url", endpoint,
                     "--workers", str(args.workers)]
        cold = analyzer(*pull_args, env=env)
        print(f"  analyzer pull, cold: {cold.seconds:,.1f} s", flush=True)
        noop = analyzer(*pull_args, env=env)
        print(f"  analyzer pull, nothing new: {noop.seconds:,.1f} s", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    pulled_files, pulled_events = manifest_counts(data)
    return ServerRun(name, up, len(sample) / get_seconds, len(keys) / list_seconds, cold, noop, pulled_files,
                     pulled_events)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=520_000)
    p.add_argument("--per-file", type=int, default=17, help="median events per object (synth varies them)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=32, help="pull --workers (download threads)")
    p.add_argument("--upload-threads", type=int, default=16)
    p.add_argument("--sample", type=int, default=4_000, help="objects in the raw GetObject measurement")
    p.add_argument("--servers", default="moto,static", help="moto (the tests' server) and/or static (a fast "
                   "in-memory stand-in)")
    p.add_argument("--ttl", type=float, default=3_600, help="a server stops by itself after this many seconds")
    p.add_argument("--serve-static", type=Path, metavar="ROOT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_static:
        serve_static(args.serve_static, args.ttl)
        return 0

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared)", flush=True)
    root = corpus(args.events, args.per_file, args.seed)
    files = sorted(root.rglob("*.json.gz"))
    size = sum(f.stat().st_size for f in files)
    print(f"corpus: {len(files):,} objects, {args.events:,} events, {size / 1e6:,.1f} MB gzipped ({root})")
    if len(files) < 20_000:
        print("warning: fewer than 20,000 objects; raise --events or lower --per-file")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}

    ingest_data = OUT / "pull-bench-ingest"
    shutil.rmtree(ingest_data, ignore_errors=True)
    local = analyzer("ingest", str(root), "--data", str(ingest_data), env=env)
    local_files, local_events = manifest_counts(ingest_data)
    print(f"analyzer ingest (local disk): {local.seconds:,.1f} s", flush=True)

    commands = {
        "moto": [sys.executable, "-c", SERVER, str(args.ttl)],
        "static": [sys.executable, __file__, "--serve-static", str(root), "--ttl", str(args.ttl)],
    }
    runs = [measure(name, commands[name], root, files, args, env) for name in args.servers.split(",")]

    def rate(objects: int, events: int, seconds: float) -> str:
        return f"{objects / seconds:,.0f} objects/s, {events / seconds:,.0f} events/s"

    print()
    print(f"analyzer ingest, local disk: {rate(local_files, local_events, local.seconds)} ({local.seconds:,.1f} s, "
          f"peak RSS {local.peak_rss_mb:,.0f} MB)")
    for r in runs:
        assert r.files == local_files == len(files) and r.events == local_events, (r, local_files, local_events)
        ratio = local.seconds / r.cold.seconds
        print(f"-- server: {r.name}")
        if r.upload:
            print(f"   upload:               {rate(len(files), args.events, r.upload)}")
        print(f"   raw GetObject:        {r.raw_get:,.0f} objects/s ({args.workers} threads); raw listing "
              f"{r.raw_list:,.0f} keys/s ({len(files) / r.raw_list:,.1f} s for the bucket)")
        print(f"   analyzer pull, cold:  {rate(r.files, r.events, r.cold.seconds)} ({r.cold.seconds:,.1f} s, "
              f"peak RSS {r.cold.peak_rss_mb:,.0f} MB) = {r.files / r.cold.seconds / r.raw_get:.0%} of raw GetObject")
        print(f"   pull / ingest:        {ratio:.0%} (target >= 60 %: {'met' if ratio >= 0.6 else 'NOT met'})")
        print(f"   no-op pull:           {r.noop.seconds:,.1f} s over {r.files:,} objects "
              f"(target <= 5 s: {'met' if r.noop.seconds <= 5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(120)
    sys.exit(main())
