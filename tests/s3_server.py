"""A real S3-protocol server for tests (moto in server mode on 127.0.0.1), a fault-injecting HTTP
proxy to put in front of it, and helpers that fill a bucket with CloudTrail-layout log files.

Registered as a pytest plugin from ``conftest.py``. Fixtures:

- ``s3_server`` (session): the running server; ``s3_server.endpoint_url``, ``s3_server.client()``.
- ``s3`` (function): the same server, emptied (``/moto-api/reset``), with dummy credentials and a
  clean AWS environment for the duration of the test.

boto3 reaches the server over HTTP through ``endpoint_url``: the production code path, no patching.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import logging
import random
import socket
import struct
import threading
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CLEARED_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
               "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "ANALYZER_CONFIG", "ANALYZER_DATA")


@dataclass
class S3Server:
    endpoint_url: str

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client on this server (or on ``endpoint_url``, e.g. a proxy in front of it)."""
        config.setdefault("retries", {"mode": "standard", "total_max_attempts": 3})
        return boto3.client(
            "s3", endpoint_url=endpoint_url or self.endpoint_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing", config=Config(**config),
        )

    def seed(self, bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
        """Put objects straight into the in-process server's store (no HTTP: thousands per second,
        where moto's HTTP front end manages about a hundred). Reads still go through HTTP."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3 import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, body in objects:
            backend.put_object(bucket, key, body)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a log line per request costs ~15%
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """The server, emptied, with dummy credentials and no stray AWS configuration in the environment."""
    s3_server.reset()
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    nowhere = tmp_path_factory.mktemp("aws-config")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
    return s3_server


# -- CloudTrail-layout corpora --------------------------------------------------------------------
def cloudtrail_key(account: str, region: str, when: datetime, *, org: str | None = None, prefix: str = "",
                   kind: str = "CloudTrail", unique: str = "0000000000000000") -> str:
    """``[prefix/]AWSLogs/[o-…/]ACCOUNT/<kind>/REGION/YYYY/MM/DD/ACCOUNT_<kind>_REGION_<ts>_<unique>.json.gz``."""
    root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    org_part = f"{org}/" if org else ""
    return (f"{root}AWSLogs/{org_part}{account}/{kind}/{region}/{when:%Y/%m/%d}/"
            f"{account}_{kind}_{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz")


def make_events(rng: random.Random, count: int, account: str, region: str, when: datetime,
                pad: int = 0) -> list[dict[str, Any]]:
    """``count`` plausible management events around ``when``; ``pad`` adds incompressible bytes."""
    events = []
    for _ in range(count):
        moment = when - timedelta(seconds=rng.randrange(0, 300))
        event: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": account,
                             "arn": f"arn:aws:iam::{account}:user/alice", "userName": "alice"},
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": rng.choice(["s3.amazonaws.com", "ec2.amazonaws.com", "iam.amazonaws.com"]),
            "eventName": rng.choice(["GetObject", "DescribeInstances", "ListUsers", "PutObject"]),
            "awsRegion": region,
            "sourceIPAddress": f"203.0.113.{rng.randrange(1, 255)}",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"bucketName": "example", "key": f"k{rng.randrange(10**6)}"},
            "responseElements": None,
            "requestID": uuid.UUID(int=rng.getrandbits(128)).hex,
            "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "readOnly": True,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        if pad:
            event["requestParameters"]["padding"] = rng.randbytes(pad // 2).hex()
        events.append(event)
    return events


def log_bytes(events: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps({"Records": events}).encode(), compresslevel=1)


@dataclass
class Trail:
    """What a corpus put where: every log file's key and event ids, plus the non-log decoys."""

    files: dict[str, list[str]] = field(default_factory=dict)  # key → eventIDs
    decoys: list[str] = field(default_factory=list)  # digests, insights, other services

    @property
    def event_ids(self) -> list[str]:
        return [e for ids in self.files.values() for e in ids]

    @property
    def digests(self) -> list[str]:
        """The decoy digest files' keys (pull fetches them: no events, a record for verify)."""
        return [k for k in self.decoys if "/CloudTrail-Digest/" in k]

    def keys_under(self, prefix: str) -> list[str]:
        return sorted(k for k in self.files if k.startswith(prefix))


def put_objects(client: Any, bucket: str, objects: Iterable[tuple[str, bytes]], threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects))


def put_trail(
    target: Any,
    bucket: str,
    *,
    accounts: Iterable[str],
    regions: Iterable[str],
    days: Iterable[date],
    files_per_day: int = 2,
    events_per_file: int = 3,
    org: str | None = None,
    prefix: str = "",
    seed: int = 0,
    decoys: bool = True,
    pad: int = 0,
    create: bool = True,
) -> Trail:
    """Upload a CloudTrail corpus (log files, and with ``decoys`` digest files, which a pull fetches
    for ``verify --data`` but which hold no events, and Insights/Config files, which a pull must
    never fetch) with a boto3 client, or seed it into an :class:`S3Server` directly.
    Deterministic for a given ``seed``."""
    rng = random.Random(seed)
    client = target.client() if isinstance(target, S3Server) else target
    if create:
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
    trail = Trail()
    uploads: list[tuple[str, bytes]] = []
    for account in accounts:
        for region in regions:
            for day in days:
                for n in range(files_per_day):
                    when = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                        minutes=5 + n * (1435 // max(files_per_day, 1)))
                    unique = f"{rng.getrandbits(64):016x}"
                    key = cloudtrail_key(account, region, when, org=org, prefix=prefix, unique=unique)
                    events = make_events(rng, events_per_file, account, region, when, pad)
                    trail.files[key] = [e["eventID"] for e in events]
                    uploads.append((key, log_bytes(events)))
                if decoys:
                    digest = cloudtrail_key(account, region, when, org=org, prefix=prefix,
                                            kind="CloudTrail-Digest", unique=unique)
                    insight = cloudtrail_key(account, region, when, org=org, prefix=prefix,
                                             kind="CloudTrail-Insight", unique=unique)
                    config = cloudtrail_key(account, region, when, org=org, prefix=prefix, kind="Config",
                                            unique=unique)
                    digest_body = json.dumps({"digestStartTime": when.isoformat(), "logFiles": []}).encode()
                    uploads += [(digest, gzip.compress(digest_body)), (insight, log_bytes([])),
                                (config, log_bytes([]))]
                    trail.decoys += [digest, insight, config]
    if isinstance(target, S3Server):
        target.seed(bucket, uploads)
    else:
        put_objects(client, bucket, uploads)
    return trail


# -- a fault-injecting proxy ----------------------------------------------------------------------
def _error_xml(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>FAULT</RequestId></Error>").encode()


class FaultProxy:
    """A small threaded HTTP proxy on 127.0.0.1 in front of the S3 server.

    Every ``fault_every``-th request gets a fault: 503 SlowDown, the connection dropped without an
    answer, a GetObject body cut short, or a stall (the kinds in turn, so each one happens). It can
    also deny listings under given prefixes (and GetObject of keys under others), or reject every
    request's credentials. Faults are bounded (``max_faults``) and the proxy stops by itself after
    ``lifetime`` seconds, so a broken client can never hang the test run.
    """

    KINDS = ("slowdown", "drop", "truncate")

    def __init__(
        self,
        target: str,
        *,
        fault_every: int = 0,
        kinds: Iterable[str] = KINDS,
        max_faults: int = 1_000,
        deny_prefixes: Iterable[str] = (),
        deny_keys: Iterable[str] = (),
        reject_credentials: str | None = None,
        delay: float = 0.0,
        stall: float = 0.0,
        lifetime: float = 120.0,
    ) -> None:
        parsed = urllib.parse.urlsplit(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.fault_every = fault_every
        self.kinds = tuple(kinds)
        self.max_faults = max_faults
        self.seen = 0
        self.deny_prefixes = tuple(deny_prefixes)
        self.deny_keys = tuple(deny_keys)
        self.reject_credentials = reject_credentials
        self.delay = delay
        self.stall = stall
        self.lifetime = lifetime
        self.faults: Counter[str] = Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def listed_prefixes(self) -> set[tuple[str, str | None]]:
        """(prefix, delimiter) of every ListObjectsV2 first page that reached the proxy."""
        with self.lock:
            return {(q.get("prefix", ""), q.get("delimiter")) for _, _, q in self.requests
                    if "list-type" in q and "continuation-token" not in q}

    def gets(self) -> int:
        with self.lock:
            return sum(1 for m, p, q in self.requests if m == "GET" and "list-type" not in q and p.count("/") > 1)

    def _decide(self, method: str, path: str, query: dict[str, str]) -> str | None:
        with self.lock:
            self.requests.append((method, path, query))
            if self.reject_credentials:
                return "reject"
            denied = self.deny_prefixes or ("\0",)
            if "list-type" in query and query.get("prefix", "").startswith(denied):
                return "deny"
            if method == "GET" and "list-type" not in query and path.partition("/")[2].partition("/")[2].startswith(
                    self.deny_keys or ("\0",)):
                return "deny"
            self.seen += 1
            if self.fault_every and self.seen % self.fault_every == 0 and sum(self.faults.values()) < self.max_faults:
                body = method == "GET" and "list-type" not in query and path.count("/") > 1
                usable = [k for k in self.kinds if body or k != "truncate"]
                kind = min(usable, key=lambda k: self.faults[k])  # the least used so far: every kind shows up
                self.faults[kind] += 1
                return kind
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {"Content-Type": "application/xml"}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

            def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                for attempt in range(2):
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                    try:
                        headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                        if body or self.command in ("PUT", "POST"):
                            headers["Content-Length"] = str(len(body))
                        self.upstream.request(self.command, self.path, body=body or None, headers=headers)
                        response = self.upstream.getresponse()
                        return response.status, response.getheaders(), response.read()
                    except (http.client.HTTPException, OSError):
                        self.upstream.close()
                        self.upstream = None
                        if attempt:
                            raise
                raise AssertionError("unreachable")

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:
                    self.close_connection = True

            def _handle(self) -> None:
                body = self._body()
                split = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
                fault = proxy._decide(self.command, split.path, query)
                if proxy.delay:
                    threading.Event().wait(proxy.delay)
                if fault == "reject":
                    return self._reply(403, _error_xml(proxy.reject_credentials or "InvalidAccessKeyId",
                                                       "The AWS Access Key Id you provided does not exist."))
                if fault == "deny":
                    return self._reply(403, _error_xml("AccessDenied", "Access Denied"))
                if fault == "slowdown":
                    return self._reply(503, _error_xml("SlowDown", "Please reduce your request rate."))
                if fault == "drop":
                    return self._drop()
                if fault == "stall":
                    threading.Event().wait(proxy.stall)
                status, headers, payload = self._forward(body)
                if fault == "truncate" and len(payload) > 1:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    return self._drop()
                kept = {n: v for n, v in headers
                        if n.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive")}
                if self.command == "HEAD":
                    self.send_response(status)
                    for name, value in kept.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", dict((k.lower(), v) for k, v in headers).get(
                        "content-length", "0"))
                    self.end_headers()
                    return None
                return self._reply(status, payload, kept)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        return Handler


def dataset_rows(data: Path) -> list[tuple[str, str, int]]:
    """(eventID, source_object, record_index) of every row in a dataset, sorted: equal datasets
    give equal lists, duplicates show as repeated tuples."""
    import duckdb

    files = sorted(str(p) for p in data.glob("event_date=*/*.parquet"))
    if not files:
        return []
    rows = duckdb.sql("select eventID, source_object, record_index from read_parquet($files) order by all",
                      params={"files": files}).fetchall()
    return [(str(a), str(b), int(c)) for a, b, c in rows]


# -- IAM, STS and Organizations (the posture tests) -----------------------------------------------
# The same moto server answers IAM, STS and Organizations. What its APIs cannot set (the root
# user's MFA and keys, when a password was last used, when a user was made) is set in the
# in-process backend, as seed() does for S3; everything the code under test does goes over HTTP.
IAM_READ_ACTIONS = ["iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListMFADevices",
                    "iam:ListVirtualMFADevices", "iam:GetAccountSummary", "iam:GetAccountPasswordPolicy"]


def iam_backend(account_id: str) -> Any:
    """The in-process moto IAM backend of ``account_id``."""
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def set_root(account_id: str, *, mfa: bool | None = None, access_keys: bool | None = None,
             password_last_used: datetime | None = None) -> None:
    """The root user's settings, as GetAccountSummary (and the credential report's root row) show them."""
    backend = iam_backend(account_id)
    if mfa is not None:
        backend.account_summary._account_mfa_enabled = int(mfa)
    if access_keys is not None:
        backend.account_summary._account_access_keys_present = int(access_keys)
    if password_last_used is not None:
        backend._root_password_last_used = password_last_used


def set_user(account_id: str, user_name: str, *, password_last_used: datetime | None = None,
             created: datetime | None = None) -> None:
    """A user's last console sign-in (what IAM records) or creation time (its password's, too)."""
    user = iam_backend(account_id).users[user_name]
    if password_last_used is not None:
        user.password_last_used = password_last_used
    if created is not None:
        user.create_date = created


@pytest.fixture
def aws_root_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credential reports start with the ``<root_account>`` row AWS writes (moto leaves it out), built
    from the root settings of :func:`set_root`."""
    from moto.iam.models import IAMBackend

    original = IAMBackend.get_credential_report

    def with_root(self: Any) -> str:
        header, _, users = original(self).partition("\n")
        summary = self.account_summary
        used = getattr(self, "_root_password_last_used", None)
        keys = "true" if summary._account_access_keys_present else "false"
        rotated = "2020-01-01T00:00:00+00:00" if summary._account_access_keys_present else "N/A"
        row = (f"<root_account>,arn:aws:iam::{self.account_id}:root,2015-01-01T00:00:00+00:00,not_supported,"
               f"{used.strftime('%Y-%m-%dT%H:%M:%S+00:00') if used else 'no_information'},not_supported,"
               f"not_supported,{'true' if summary._account_mfa_enabled else 'false'},{keys},{rotated},N/A,N/A,N/A,"
               "false,N/A,N/A,N/A,N/A,false,N/A,false,N/A")
        return f"{header}\n{row}\n{users}"

    monkeypatch.setattr(IAMBackend, "get_credential_report", with_root)


def credentials(response: dict[str, Any]) -> dict[str, str]:
    """boto3 client arguments from an AssumeRole response or an access key."""
    if "Credentials" in response:
        c = response["Credentials"]
        return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"]}
    key = response["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def aws_client(server: S3Server, service: str, creds: dict[str, str] | None = None, endpoint_url: str | None = None,
               **config: Any) -> Any:
    config.setdefault("retries", {"mode": "standard", "total_max_attempts": 3})
    creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=endpoint_url or server.endpoint_url, region_name="us-east-1",
                        config=Config(**config), **creds)


def in_account(server: S3Server, account_id: str) -> dict[str, str]:
    """Credentials that act in ``account_id`` (moto lets any caller assume a role there while its
    authorization is off: how a test makes users in several accounts)."""
    sts = aws_client(server, "sts")
    return credentials(sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/setup", RoleSessionName="setup"))


def set_authorization(server: S3Server, on: bool) -> None:
    """Turn moto's IAM authorization on (every request signed by a known key, its policies enforced)
    or off (anything goes: the default)."""
    request = urllib.request.Request(f"{server.endpoint_url}/moto-api/reset-auth", data=b"0" if on else b"inf",
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@contextlib.contextmanager
def authorization(server: S3Server) -> Iterator[None]:
    """moto's IAM authorization on for the duration (always off again after: the server is shared)."""
    set_authorization(server, True)
    try:
        yield
    finally:
        set_authorization(server, False)


def _query_error(code: str, message: str) -> bytes:
    return (f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>THROTTLE</RequestId>"
            "</ErrorResponse>").encode()


class ThrottleProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of the moto server that answers AWS query-protocol
    calls (IAM, STS) with ``400 Throttling`` (``Rate exceeded``) as AWS does, and JSON-protocol ones
    (SQS) with ``400 ThrottlingException``: the first N requests of
    each action in ``throttle`` (N < 0: every one), forwarding everything else. ``throttled`` counts
    what it answered so, by action. Stops by itself after ``lifetime`` seconds."""

    def __init__(self, target: str, throttle: dict[str, int], *, lifetime: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.remaining = dict(throttle)
        self.throttled: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="throttle-proxy", daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ThrottleProxy:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.timer.cancel()
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def _decide(self, action: str) -> bool:
        with self.lock:
            left = self.remaining.get(action, 0)
            if left == 0:
                self.forwarded[action] += 1
                return False
            if left > 0:
                self.remaining[action] = left - 1
            self.throttled[action] += 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
                target = self.headers.get("X-Amz-Target", "")
                action = (form.get("Action") or [target.rpartition(".")[2]])[0]
                if proxy._decide(action):
                    if target:  # the JSON protocol (SQS): the error in its JSON shape
                        body = json.dumps({"__type": "com.amazonaws.sqs#ThrottlingException",
                                           "message": "Rate exceeded"}).encode()
                        return self._reply(400, body, [("Content-Type", "application/x-amz-json-1.0")])
                    return self._reply(400, _query_error("Throttling", "Rate exceeded"),
                                       [("Content-Type", "text/xml")])
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    kept = [(n, v) for n, v in response.getheaders()
                            if n.lower() not in ("content-length", "transfer-encoding", "connection", "keep-alive")]
                    return self._reply(response.status, payload, kept)
                finally:
                    upstream.close()

            do_GET = do_POST = _handle

        return Handler


# -- a signed CloudTrail digest chain (issue 16) ----------------------------------------------------
@dataclass
class SignedChain:
    """A trail's log files and its hourly digest files, signed as CloudTrail signs them (SHA256withRSA
    over the documented signing string, hex in ``x-amz-meta-signature``) with a key made for the test.

    ``objects`` maps each key to (bytes, metadata); the tampering methods change them as an intruder
    could after delivery (nothing re-links the chain), :meth:`upload` puts them into a bucket and
    :meth:`write` copies them to a folder in the S3 key layout.
    """

    bucket: str
    account: str
    region: str
    trail: str
    key: Any  # the RSA private key
    prefix: str = ""
    org: str | None = None
    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)  # digest keys, oldest first
    logs: dict[str, list[str]] = field(default_factory=dict)  # digest key → the log keys it lists
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest key → its JSON

    @staticmethod
    def fingerprint(private_key: Any) -> str:
        import hashlib

        from cryptography.hazmat.primitives import serialization

        der = private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return hashlib.md5(der).hexdigest()  # a name for the key, like CloudTrail's 32 hex digits

    @staticmethod
    def key_file(private_key: Any, path: Path, *, start: datetime, end: datetime) -> Path:
        """The JSON ``aws cloudtrail list-public-keys`` prints, for ``private_key``'s public half."""
        import base64

        from cryptography.hazmat.primitives import serialization

        der = private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        path.write_text(json.dumps({"PublicKeyList": [{
            "Value": base64.b64encode(der).decode(), "ValidityStartTime": start.isoformat(),
            "ValidityEndTime": end.isoformat(), "Fingerprint": SignedChain.fingerprint(private_key)}]}, indent=4))
        return path

    def digest_key(self, end: datetime) -> str:
        root = f"{self.prefix.strip('/')}/" if self.prefix.strip("/") else ""
        root += f"AWSLogs/{self.org}/" if self.org else "AWSLogs/"
        return (f"{root}{self.account}/CloudTrail-Digest/{self.region}/{end:%Y/%m/%d}/{self.account}_"
                f"CloudTrail-Digest_{self.region}_{self.trail}_{self.region}_{end:%Y%m%dT%H%M%SZ}.json.gz")

    def sign(self, doc: dict[str, Any], private_key: Any | None = None) -> tuple[bytes, str]:
        """The digest's bytes and hex signature (by the chain's key unless ``private_key`` is given)."""
        import hashlib

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        content = json.dumps(doc, separators=(",", ":")).encode()
        previous = doc["previousDigestSignature"] if doc["previousDigestSignature"] is not None else "null"
        text = (f"{doc['digestEndTime']}\n{doc['digestS3Bucket']}/{doc['digestS3Object']}\n"
                f"{hashlib.sha256(content).hexdigest()}\n{previous}")
        signature = (private_key or self.key).sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        return gzip.compress(content), signature.hex()

    def put_digest(self, key: str, doc: dict[str, Any], private_key: Any | None = None) -> str:
        body, signature = self.sign(doc, private_key)
        self.objects[key] = (body, {"signature": signature, "signature-algorithm": "SHA256withRSA"})
        self.docs[key] = doc
        return signature

    # -- tampering, as after delivery -----------------------------------------------------------
    def modify_log(self, key: str, rng: random.Random) -> None:
        body, metadata = self.objects[key]
        doc = json.loads(gzip.decompress(body))
        record = doc["Records"][rng.randrange(len(doc["Records"]))]
        record["sourceIPAddress"] = f"198.51.100.{rng.randrange(256)}"  # never one make_events gives
        self.objects[key] = (log_bytes(doc["Records"]), metadata)

    def delete(self, key: str) -> None:
        del self.objects[key]

    def forge_link(self, digest_key: str) -> None:
        """Replace a digest by another one, validly signed by the trail's own key: the next digest's
        record of it (hash, signature) no longer matches."""
        doc = dict(self.docs[digest_key])
        doc["newestEventTime"] = "2000-01-01T00:00:00Z"
        self.put_digest(digest_key, doc)

    def resign(self, digest_key: str, private_key: Any) -> None:
        """Sign a digest with another key (and name that key's fingerprint in it)."""
        doc = dict(self.docs[digest_key])
        doc["digestPublicKeyFingerprint"] = self.fingerprint(private_key)
        self.put_digest(digest_key, doc, private_key)

    def inject_log(self, when: datetime, rng: random.Random) -> str:
        """A log file no digest lists, named for ``when``."""
        key = cloudtrail_key(self.account, self.region, when, prefix=self.prefix, org=self.org,
                             unique=f"{rng.getrandbits(64):016x}")
        self.objects[key] = (log_bytes(make_events(rng, 2, self.account, self.region, when)), {})
        return key

    # -- where the objects go -------------------------------------------------------------------
    def upload(self, client: Any, *, create: bool = True) -> None:
        if create:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=self.bucket)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: client.put_object(Bucket=self.bucket, Key=item[0], Body=item[1][0],
                                                         Metadata=item[1][1]), self.objects.items()))

    def write(self, root: Path) -> Path:
        for key, (body, _) in self.objects.items():
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        return root


def signed_chain(
    rng: random.Random,
    private_key: Any,
    *,
    start: datetime,
    hours: int,
    logs_per_hour: int = 2,
    bucket: str = "trail-bucket",
    account: str = "111122223333",
    region: str = "eu-west-1",
    trail: str = "management-events",
    prefix: str = "",
    org: str | None = None,
) -> SignedChain:
    """``hours`` hourly digests from ``start``, each listing ``logs_per_hour`` log files delivered in
    its hour; the first starts the chain (``previousDigest*`` null), each later one links the one before."""
    import hashlib

    chain = SignedChain(bucket, account, region, trail, private_key, prefix, org)
    previous: tuple[str, str, str] | None = None  # key, hash, signature
    for hour in range(hours):
        begin, end = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
        entries = []
        for n in range(logs_per_hour):
            when = begin + timedelta(minutes=5 + n * (50 // max(logs_per_hour, 1)))
            key = cloudtrail_key(account, region, when, prefix=prefix, org=org, unique=f"{rng.getrandbits(64):016x}")
            events = make_events(rng, 3, account, region, when)
            body = log_bytes(events)
            chain.objects[key] = (body, {})
            entries.append({"s3Bucket": bucket, "s3Object": key,
                            "hashValue": hashlib.sha256(gzip.decompress(body)).hexdigest(),
                            "hashAlgorithm": "SHA-256", "newestEventTime": f"{when:%Y-%m-%dT%H:%M:%SZ}",
                            "oldestEventTime": f"{when:%Y-%m-%dT%H:%M:%SZ}"})
        digest_key = chain.digest_key(end)
        doc = {
            "awsAccountId": account, "digestStartTime": f"{begin:%Y-%m-%dT%H:%M:%SZ}",
            "digestEndTime": f"{end:%Y-%m-%dT%H:%M:%SZ}", "digestS3Bucket": bucket, "digestS3Object": digest_key,
            "digestPublicKeyFingerprint": SignedChain.fingerprint(private_key),
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": entries[-1]["newestEventTime"] if entries else None,
            "oldestEventTime": entries[0]["oldestEventTime"] if entries else None,
            "previousDigestS3Bucket": bucket if previous else None,
            "previousDigestS3Object": previous[0] if previous else None,
            "previousDigestHashValue": previous[1] if previous else None,
            "previousDigestHashAlgorithm": "SHA-256" if previous else None,
            "previousDigestSignature": previous[2] if previous else None,
            "logFiles": entries,
        }
        signature = chain.put_digest(digest_key, doc)
        content = gzip.decompress(chain.objects[digest_key][0])
        previous = (digest_key, hashlib.sha256(content).hexdigest(), signature)
        chain.digests.append(digest_key)
        chain.logs[digest_key] = [e["s3Object"] for e in entries]
    return chain
