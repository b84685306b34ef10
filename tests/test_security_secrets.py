"""Issue 11, findings 4 and 5: secrets never leave the process.

A webhook's path is its credential: an endpoint answering an error may quote it back, plainly,
JSON-escaped (``\\/services\\/T…``), URL-encoded or cut short. An S3 error may echo the signed
request (session token, access key id). None of it may reach stderr or ``alerts.sqlite``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from analyzer.alerts import sanitize
from analyzer.alerts.notify import NotifyContext, WebhookNotifier, describe_sns_error
from analyzer.alerts.state import Pending
from analyzer.sources.s3 import describe, fatal_message

TOKEN = "xoxbSECRETTOKEN0123456789abcdef"
PATH = f"/services/T0000ABCD/B0000EFGH/{TOKEN}"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDsecretsessiontokenvalue0123456789"
KEY_ID = "ASIAQWERTYUIOPASDFGH"


def _echoes(path: str) -> list[str]:
    full = f"https://hooks.slack.com{path}"
    return [
        json.dumps({"error": "invalid_token", "url": full}),  # JSON: https:\/\/… in some encoders
        json.dumps({"url": full}).replace("/", "\\/"),  # the JSON-escaped form of finding 4
        "invalid_token for " + urllib.parse.quote(full, safe=""),
        "x" * 180 + " " + full,  # a plain echo near the old 200-character cut
        "token: " + path,  # the path alone, without scheme and host
    ]


class EchoServer:
    """127.0.0.1, port 0: answers every POST with ``status`` and the next body of ``bodies``."""

    def __init__(self, bodies: list[str], status: int = 403) -> None:
        self.bodies = bodies
        self.status = status
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = (server.bodies.pop(0) if server.bodies else "").encode()
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # S3: a 403 quoting the signed request back
                token = self.headers.get("X-Amz-Security-Token")
                message = f"{self.headers.get('Authorization')} X-Amz-Security-Token={token}"
                body = (f"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>{message}"
                        f"</Message></Error>").encode()
                self.send_response(403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer(_echoes(PATH))
    yield server
    server.close()


def _leaks(text: str) -> list[str]:
    parts = [TOKEN, TOKEN[:8], "T0000ABCD", "B0000EFGH", SESSION_TOKEN[:16], KEY_ID, "hunter2"]
    return [p for p in parts if p in text]


def _pending() -> list[Pending]:
    from test_notify import pending  # the same alert the notify tests deliver

    return pending(1)


def test_webhook_error_never_echoes_the_body(echo: EchoServer) -> None:
    errors = []
    for _ in range(5):
        notifier = WebhookNotifier(echo.base + PATH, retries=0)
        delivery = notifier.send(_pending(), NotifyContext(since=None, until=None, reports=[]))
        assert delivery.error is not None
        errors.append(delivery.error)
    assert all(_leaks(e) == [] for e in errors), errors
    assert errors[0] == "HTTP 403 Forbidden"


@pytest.mark.parametrize("echoed", _echoes(PATH))
def test_secrets_removes_every_form_of_a_url(echoed: str) -> None:
    if "://" in echoed or "%3A%2F%2F" in echoed:  # any URL, by structure alone
        assert _leaks(sanitize.secrets(echoed)) == [], sanitize.secrets(echoed)
    scrubbed = WebhookNotifier("https://hooks.slack.com" + PATH)._scrub(echoed)
    assert _leaks(scrubbed) == [], scrubbed


def test_alert_state_stores_no_secret(tmp_path: Any) -> None:
    from test_alert_state import alert

    from analyzer.alerts.state import AlertState

    with AlertState(tmp_path / "data") as state:
        tracked = state.record([alert("e1")], subscribers={"webhook": "info"})
        state.mark_failed("webhook", [t.fingerprint for t in tracked], "HTTP 403: " + _echoes(PATH)[1])
        path = state.path
    with sqlite3.connect(path) as db:
        stored = [row[0] for row in db.execute("select last_error from deliveries")]
    assert len(stored) == 1 and stored[0].startswith("HTTP 403")
    assert _leaks(stored[0]) == [], stored


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        aws_session_token=SESSION_TOKEN,
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5))


def test_s3_errors_echoing_the_signed_request_are_scrubbed(echo: EchoServer) -> None:
    with pytest.raises(ClientError) as caught:
        _client(echo.base).get_object(Bucket="b", Key="k")
    assert SESSION_TOKEN[:16] in str(caught.value.response["Error"]["Message"])  # the server did echo it
    for line in (describe(caught.value, "s3:GetObject"), fatal_message(caught.value, "s3://b/") or "",
                 describe_sns_error(caught.value)):
        assert _leaks(line) == [], line


def test_an_endpoint_password_is_never_printed() -> None:
    with pytest.raises(BotoCoreError) as caught:
        _client("http://auditor:hunter2@127.0.0.1:9").list_objects_v2(Bucket="b")
    for line in (fatal_message(caught.value, "s3://b/") or describe(caught.value, "s3:ListBucket"),
                 describe_sns_error(caught.value)):
        assert "hunter2" not in line, line
