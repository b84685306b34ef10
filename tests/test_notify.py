"""Notifiers: SNS message limits and splitting, the webhook's retries and escaping, secrets kept out."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from analyzer.alerts.notify import (
    JSON_MARKER,
    SNS_MAX_BYTES,
    NotifyContext,
    SnsNotifier,
    WebhookNotifier,
    headline,
    notifiers_from_config,
    plain,
    redact_url,
    slack,
)
from analyzer.alerts.state import Pending
from analyzer.errors import AnalyzerError

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
SECRET_PATH = "/services/T0000/B0000/SECRETTOKEN"
CONTEXT = NotifyContext(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), ("/r/report.html",))
HOSTILE_AGENT = "<script>alert(1)</script> <!channel> <http://evil.example|click> `x` &amp;"
HOSTILE_USER = "eve\x1b[31mADMIN\x1b[0m\nnext line"


class WebhookServer:
    """A local HTTP endpoint (127.0.0.1, port 0) that answers each POST from a script:
    an HTTP status, ``"timeout"`` (answers only after ``stall`` seconds) or ``"ok"`` (the default)."""

    def __init__(self, script: Sequence[int | str] = (), *, stall: float = 1.5) -> None:
        self.script: list[int | str] = list(script)
        self.stall = stall
        self.attempts = 0
        self.delivered: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{SECRET_PATH}"

    def alerts(self) -> list[dict[str, Any]]:
        return [a for body in self.delivered for a in body.get("alerts", [])]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.attempts += 1
                    action = hook.script.pop(0) if hook.script else "ok"
                if action == "timeout":
                    time.sleep(hook.stall)
                    action = "ok-too-late"
                elif action == "ok":
                    with hook.lock:
                        hook.delivered.append(json.loads(body))
                status = 200 if isinstance(action, str) else action
                try:
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else b"no")
                except OSError:
                    pass

        return Handler

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


class RecordingSns:
    """An injected SNS client that records what would be published (or fails with ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.error = error

    def publish(self, **params: Any) -> dict[str, str]:
        if self.error is not None:
            raise self.error
        self.calls.append(params)
        return {"MessageId": str(len(self.calls))}


def pending(n: int = 1, *, events: int = 1, severity: str = "high", **extra: Any) -> list[Pending]:
    items = []
    for i in range(n):
        alert = {"detection_id": "console-login-failures", "severity": severity, "title": "Failed console sign-ins",
                 "account_id": "111122223333", "region": "us-east-1", "principal": f"user-{i}-渡辺",
                 "user_name": HOSTILE_USER, "source_ip": "203.0.113.66", "user_agent": HOSTILE_AGENT,
                 "first_seen": "2026-11-20T10:00:00Z", "last_seen": "2026-11-20T10:05:00Z", "count": events,
                 "event_ids": [f"{i:05d}-{e:06d}-0000-4000-8000-000000000000" for e in range(events)],
                 "details": {"failure_reasons": ["Failed authentication"]}, **extra}
        items.append(Pending(f"fp{i:030d}", "new", alert, datetime(2026, 11, 21, tzinfo=UTC), 0))
    return items


def sns_json(message: str) -> dict[str, Any]:
    return dict(json.loads(message.split(JSON_MARKER + "\n", 1)[1]))


def webhook(url: str, **options: Any) -> WebhookNotifier:
    options.setdefault("timeout", 5)
    options.setdefault("backoff", 0.01)
    return WebhookNotifier(url, **options)


# -- text ------------------------------------------------------------------------------------------
def test_slack_text_cannot_mention_link_format_or_leave_its_code_span() -> None:
    text = slack(HOSTILE_AGENT)
    assert "<" not in text and ">" not in text and "`" not in text
    assert "&lt;!channel&gt;" in text and "&amp;amp;" in text


def test_values_lose_control_characters_and_are_truncated() -> None:
    assert plain(HOSTILE_USER) == "eveADMIN next line"
    assert plain("x" * 500, 20) == "x" * 19 + "…"
    assert slack("<" * 500, 10) == "&lt;" * 9 + "…"  # cut before escaping: no half entity


def test_headline_counts_changes_and_severities() -> None:
    items = [*pending(2), Pending("f", "escalated", {"severity": "critical"}, datetime.now(UTC), 0)]
    assert headline(pending(1)) == "1 new CloudTrail alert: 1 high"
    assert headline(items) == "3 CloudTrail alerts (2 new, 1 escalated): 1 critical, 2 high"


def test_redacted_url_keeps_the_host_only() -> None:
    assert redact_url("https://hooks.slack.com" + SECRET_PATH) == "https://hooks.slack.com/…"
    assert redact_url("https://user:pw@hooks.example.com:8443/x?token=SECRET") == "https://hooks.example.com:8443/…"


# -- SNS -------------------------------------------------------------------------------------------
def test_sns_message_has_a_summary_then_the_alerts_as_json() -> None:
    client = RecordingSns()
    delivery = SnsNotifier(client, TOPIC).send(pending(2, principal=HOSTILE_USER), CONTEXT)  # type: ignore[arg-type]
    assert delivery.ok and delivery.messages == 1 and delivery.sent == ["fp" + "0" * 30, "fp" + "0" * 29 + "1"]
    [call] = client.calls
    assert call["Subject"] == "[analyzer] 2 new CloudTrail alerts: 2 high"
    summary, _ = call["Message"].split(JSON_MARKER)
    assert "Window: 2026-11-20T00:00:00Z to 2026-11-21T00:00:00Z" in summary and "/r/report.html" in summary
    assert "\x1b" not in summary and "eveADMIN next line" in summary
    document = sns_json(call["Message"])
    assert document["parts"] == 1 and [a["fingerprint"] for a in document["alerts"]] == delivery.sent
    assert document["alerts"][0]["user_agent"] == HOSTILE_AGENT  # JSON carries the value as logged


def test_sns_splits_into_messages_within_256_kib_and_keeps_every_alert() -> None:
    client = RecordingSns()
    items = pending(1500, events=40)
    delivery = SnsNotifier(client, TOPIC).send(items, CONTEXT)  # type: ignore[arg-type]
    assert delivery.ok and len(client.calls) == delivery.messages > 1
    seen = []
    for n, call in enumerate(client.calls, start=1):
        assert len(call["Message"].encode("utf-8")) <= SNS_MAX_BYTES
        assert len(call["Subject"]) <= 99 and call["Subject"].isascii() and call["Subject"].endswith(
            f"({n}/{len(client.calls)})")
        document = sns_json(call["Message"])
        assert (document["part"], document["parts"]) == (n, len(client.calls))
        seen += [a["fingerprint"] for a in document["alerts"]]
    assert seen == [p.fingerprint for p in items] == delivery.sent


def test_sns_cuts_down_one_alert_too_large_for_a_message() -> None:
    client = RecordingSns()
    [item] = pending(1, events=20_000)
    SnsNotifier(client, TOPIC).send([item], CONTEXT)  # type: ignore[arg-type]
    [call] = client.calls
    assert len(call["Message"].encode()) <= SNS_MAX_BYTES
    [entry] = sns_json(call["Message"])["alerts"]
    assert len(entry["event_ids"]) == 200 and entry["event_ids_truncated"] == 19_800 and entry["count"] == 20_000


def test_sns_error_is_one_line_and_keeps_every_alert() -> None:
    error = ClientError({"Error": {"Code": "NotFound", "Message": "Topic does not exist"}}, "Publish")
    delivery = SnsNotifier(RecordingSns(error), TOPIC).send(pending(3), CONTEXT)  # type: ignore[arg-type]
    assert delivery.error == "topic not found (check the ARN and its region) (NotFound: Topic does not exist)"
    assert delivery.sent == [] and len(delivery.failed) == 3


def test_sns_bad_credentials_are_named() -> None:
    error = ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": "bad"}}, "Publish")
    delivery = SnsNotifier(RecordingSns(error), TOPIC).send(pending(1), CONTEXT)  # type: ignore[arg-type]
    assert delivery.error is not None and delivery.error.startswith("credentials rejected")


def test_sns_fifo_topic_gets_a_group_and_a_deduplication_id() -> None:
    client = RecordingSns()
    SnsNotifier(client, TOPIC + ".fifo").send(pending(1), CONTEXT)  # type: ignore[arg-type]
    assert client.calls[0]["MessageGroupId"] and len(client.calls[0]["MessageDeduplicationId"]) == 64


# -- webhook ---------------------------------------------------------------------------------------
def test_webhook_posts_slack_json_with_escaped_values(hook: WebhookServer) -> None:
    delivery = webhook(hook.url).send(pending(2), CONTEXT)
    assert delivery.ok and delivery.messages == 1 and len(delivery.sent) == 2
    [body] = hook.delivered
    assert body["text"].startswith("*2 new CloudTrail alerts: 2 high*")
    assert [b["type"] for b in body["blocks"]] == ["header", "context", "section", "section"]
    everything = json.dumps(body)
    for hostile in ("<script>", "<!channel>", "<http://evil", "\\u001b", "`x`"):
        assert hostile not in everything
    assert "&lt;script&gt;" in body["blocks"][2]["text"]["text"] and "alerts" not in body


def test_webhook_can_carry_the_alerts_as_json(hook: WebhookServer) -> None:
    webhook(hook.url, include_alerts=True, blocks=False).send(pending(1), CONTEXT)
    [body] = hook.delivered
    assert set(body) == {"text", "alerts"} and body["alerts"][0]["fingerprint"] == "fp" + "0" * 30


def test_webhook_retries_a_5xx_then_delivers(hook: WebhookServer) -> None:
    hook.script = [500, 503]
    delivery = webhook(hook.url, retries=2).send(pending(1), CONTEXT)
    assert delivery.ok and hook.attempts == 3 and len(hook.delivered) == 1


def test_webhook_gives_up_after_500_and_a_timeout_and_keeps_the_alerts(hook: WebhookServer) -> None:
    hook.script = [500, "timeout", 500]
    delivery = webhook(hook.url, retries=2, timeout=0.3).send(pending(3), CONTEXT)
    assert delivery.error == "HTTP 500 Internal Server Error after 3 attempts"  # the body is never echoed
    assert hook.attempts == 3 and delivery.sent == [] and len(delivery.failed) == 3


def test_webhook_timeout_is_reported_as_such(hook: WebhookServer) -> None:
    hook.script = ["timeout"]
    delivery = webhook(hook.url, retries=0, timeout=0.3).send(pending(1), CONTEXT)
    assert delivery.error == "no answer within 0.3 s"


def test_webhook_does_not_retry_a_4xx_and_never_shows_its_url(hook: WebhookServer) -> None:
    hook.script = [404]
    notifier = webhook(hook.url, retries=3)
    delivery = notifier.send(pending(1), CONTEXT)
    assert hook.attempts == 1 and delivery.error == "HTTP 404 Not Found"
    assert "SECRETTOKEN" not in notifier.label and "SECRETTOKEN" not in repr(delivery)


def test_webhook_honours_retry_after_on_429(hook: WebhookServer) -> None:
    hook.script = [429]
    waits: list[float] = []
    delivery = webhook(hook.url, retries=1, backoff=5, sleep=waits.append).send(pending(1), CONTEXT)
    assert delivery.ok and waits == [0.0]


def test_webhook_unreachable_is_reported_without_the_secret() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = webhook(f"http://127.0.0.1:{port}{SECRET_PATH}", retries=1).send(pending(1), CONTEXT)
    assert delivery.error is not None and delivery.error.startswith("cannot connect")
    assert "SECRETTOKEN" not in delivery.error


def test_webhook_splits_messages_and_reports_what_was_delivered(hook: WebhookServer) -> None:
    hook.script = ["ok", 500]
    items = pending(5)
    delivery = webhook(hook.url, retries=0, max_alerts=2).send(items, CONTEXT)
    assert delivery.sent == [p.fingerprint for p in items[:2]]
    assert delivery.failed == [p.fingerprint for p in items[2:]] and delivery.messages == 1
    assert hook.delivered[0]["blocks"][0]["text"]["text"].endswith("(1/3)")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "https://hooks.example.com/SECRET TOKEN", "https:///SECRET"])
def test_webhook_rejects_a_bad_url_without_quoting_it(url: str) -> None:
    with pytest.raises(AnalyzerError, match="http") as info:
        WebhookNotifier(url)
    assert "passwd" not in str(info.value) and "SECRET" not in str(info.value)


# -- configuration ---------------------------------------------------------------------------------
def test_config_builds_both_notifiers_from_tables_and_environment() -> None:
    config = {"notify": {"sns": {"topic_arn": TOPIC, "min_severity": "high"},
                         "webhook": {"url_env": "HOOK", "timeout": 2, "retries": 1, "max_alerts": 5}}}
    sns, hook = notifiers_from_config(config, environ={"HOOK": "https://hooks.example.com" + SECRET_PATH},
                                      sns_client=RecordingSns())  # type: ignore[arg-type]
    assert (sns.name, sns.min_severity) == (f"sns:{TOPIC}", "high")
    assert isinstance(hook, WebhookNotifier) and (hook.timeout, hook.retries, hook.max_alerts) == (2, 1, 5)
    assert hook.name == "webhook:HOOK" and hook.label == "webhook $HOOK (https://hooks.example.com/…)"


def test_flags_win_over_the_config() -> None:
    [hook] = notifiers_from_config({"notify": {"webhook": {"url_env": "A"}}}, webhook_url_env="B",
                                   environ={"B": "http://127.0.0.1/x"})
    assert hook.name == "webhook:B"


def test_a_missing_webhook_variable_is_named_in_the_error() -> None:
    with pytest.raises(AnalyzerError, match="ANALYZER_WEBHOOK_URL"):
        notifiers_from_config({"notify": {"webhook": {}}}, environ={})


@pytest.mark.parametrize("table, message", [
    ({"sns": {"topic_arn": "arn:aws:s3:::bucket"}}, "not an SNS topic ARN"),
    ({"webhook": {"url_env": "HOOK", "retries": -1}}, "retries"),
    ({"webhook": {"url_env": "HOOK", "min_severity": "urgent"}}, "min_severity"),
])
def test_bad_notify_settings_are_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        notifiers_from_config({"notify": table}, environ={"HOOK": "http://127.0.0.1/x"},
                              sns_client=RecordingSns())  # type: ignore[arg-type]
