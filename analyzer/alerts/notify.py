"""Notifiers: SNS and a Slack-compatible webhook, each sending the alerts a run has to deliver.

A notifier never decides *what* is new (that is :mod:`analyzer.alerts.state`); it gets the pending
alerts, sends as many as it can, and says which ones went out, so that what did not is retried by
the next run. Notifiers never raise for a delivery problem: they return a :class:`Delivery` with a
one-line error. Every alert value is attacker-controlled (user names, user agents are whatever the
caller sent), so each one is stripped of control characters and truncated, and for Slack also
escaped (``&``, ``<``, ``>``) and put in a code span (no mentions, no links, no formatting).

Secrets stay secret: the webhook URL (its path is the credential) is read from an environment
variable named in the configuration, and only ``scheme://host/…`` ever appears in a message.

    sns = SnsNotifier(make_sns_client(arn), arn)
    delivery = sns.send(state.pending(sns.name), NotifyContext(since, until))
"""

from __future__ import annotations

import hashlib
import http
import http.client
import json
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from analyzer.alerts import sanitize
from analyzer.alerts.records import dumps, iso
from analyzer.alerts.shape import SEVERITIES
from analyzer.alerts.state import Pending
from analyzer.errors import AnalyzerError

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

#: SNS limits: a message is at most 256 KiB of UTF-8; a subject is ASCII, one line, under 100 characters.
SNS_MAX_BYTES = 262_144
SNS_SUBJECT_MAX = 99
JSON_MARKER = "--- alerts (JSON) ---"
VALUE_LIMIT = 160  # characters of one log value in a message
MAX_EVENT_IDS = 200  # event ids per alert in a message when the alert would not fit otherwise
DEFAULT_WEBHOOK_ENV = "ANALYZER_WEBHOOK_URL"

_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256}"
                        r"(?:\.fifo)?)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class NotifyContext:
    """What a message says about the run besides its alerts."""

    since: datetime | None = None
    until: datetime | None = None
    reports: tuple[str, ...] = ()


@dataclass
class Delivery:
    """What one notifier did in one run: alerts sent (by fingerprint), not sent, and why."""

    notifier: str
    label: str
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    messages: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Notifier(Protocol):
    """Anything that can deliver pending alerts. ``name`` keys the delivery state (keep it stable);
    ``label`` is how messages name it (never a secret)."""

    name: str
    label: str
    min_severity: str

    def send(self, items: Sequence[Pending], context: NotifyContext) -> Delivery: ...


# -- text shared by every notifier -------------------------------------------------------------------
def truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: max(limit - 1, 0)] + "…"


def plain(value: object, limit: int = VALUE_LIMIT) -> str:
    """One log value as one printable, bounded line (control characters and escapes removed)."""
    return truncate(sanitize.text(value), limit)


def slack(value: object, limit: int = VALUE_LIMIT) -> str:
    """One log value for Slack mrkdwn: :func:`plain`, then ``&``/``<``/``>`` escaped (Slack's own
    rule: no ``<!channel>``, ``<@U…>`` or ``<http://…|…>`` can be formed) and backticks replaced,
    so that the value cannot leave the code span it is shown in."""
    text = plain(value, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("`", "ʹ")


def headline(items: Sequence[Pending]) -> str:
    """``3 new CloudTrail alerts: 1 critical, 2 high`` (ASCII, our own words only)."""
    changes = Counter(p.change for p in items)
    n = len(items)
    noun = "alert" if n == 1 else "alerts"
    if set(changes) <= {"new"}:
        text = f"{n} new CloudTrail {noun}"
    else:
        order = ("new", "escalated", "grew")
        text = f"{n} CloudTrail {noun} (" + ", ".join(f"{changes[c]} {c}" for c in order if changes[c]) + ")"
    levels = Counter(str(p.alert.get("severity") or "").lower() for p in items)
    ranked = [s for s in reversed(SEVERITIES) if levels[s]]
    return text + (": " + ", ".join(f"{levels[s]} {s}" for s in ranked) if ranked else "")


def _window(context: NotifyContext) -> str:
    return f"{iso(context.since) or 'start of data'} to {iso(context.until) or 'now'}"


def _fields(alert: Mapping[str, Any], render: Callable[[object], str]) -> list[tuple[str, str]]:
    """The parts of an alert a person reads first, each rendered for the target."""
    who = alert.get("principal") or alert.get("user_name")
    where = " ".join(str(v) for v in (alert.get("account_id"), alert.get("region")) if v)
    count = int(alert.get("count") or 0)
    span = f"{alert.get('first_seen') or '?'} to {alert.get('last_seen') or '?'}"
    fields = [("principal", render(who) if who else ""), ("source IP", render(alert.get("source_ip") or "")),
              ("account", render(where)), ("user agent", render(alert.get("user_agent") or "")),
              ("events", f"{count} ({render(span)})")]
    return [(name, value) for name, value in fields if value]


def _plain_alert(index: int, item: Pending) -> str:
    alert = item.alert
    title = plain(alert.get("title"), 120)
    lines = [f"{index}. [{plain(alert.get('severity'), 12)}] {title} ({plain(alert.get('detection_id'), 80)}) "
             f"- {item.change}"]
    lines += [f"   {name}: {value}" for name, value in _fields(alert, plain)]
    lines.append(f"   fingerprint: {item.fingerprint}")
    return "\n".join(lines)


def _json_entry(item: Pending, limit: int) -> str:
    """The alert as JSON (ASCII), cut down to ``limit`` bytes when it would not fit: event ids first,
    then ``details``; what was cut is said in the entry."""
    entry: dict[str, Any] = {"fingerprint": item.fingerprint, "change": item.change, **item.alert}
    text = dumps(entry)
    if len(text) <= limit:
        return text
    ids = list(entry.get("event_ids") or [])
    if len(ids) > MAX_EVENT_IDS:
        entry["event_ids"] = ids[:MAX_EVENT_IDS]
        entry["event_ids_truncated"] = len(ids) - MAX_EVENT_IDS
        text = dumps(entry)
    if len(text) > limit:
        entry["details"] = truncate(dumps(entry.get("details")), 1000)
        entry["details_truncated"] = True
        text = dumps(entry)
    if len(text) > limit:
        entry = {"fingerprint": item.fingerprint, "change": item.change, "truncated": True,
                 **{k: plain(item.alert.get(k), 500) for k in ("detection_id", "severity", "title", "principal",
                                                               "source_ip", "first_seen", "last_seen")}}
        text = dumps(entry)
    return text


# -- SNS ----------------------------------------------------------------------------------------------
def parse_topic_arn(arn: str) -> dict[str, str]:
    """Region, account and name of an SNS topic ARN; :class:`AnalyzerError` when it is not one."""
    match = _TOPIC_ARN.match(arn.strip())
    if not match:
        raise AnalyzerError(f"{sanitize.text(arn)!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
    return match.groupdict()


def make_sns_client(
    topic_arn: str,
    *,
    session: boto3.Session | None = None,
    endpoint_url: str | None = None,
) -> SNSClient:
    """An SNS client in the topic's own region (standard retries, short timeouts)."""
    region = parse_topic_arn(topic_arn)["region"]
    config = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=5, read_timeout=30,
                    user_agent_extra="analyzer-nightly")
    client: SNSClient = (session or boto3.Session()).client("sns", region_name=region, endpoint_url=endpoint_url,
                                                            config=config)
    return client


SNS_ERRORS = {
    "NotFound": "topic not found (check the ARN and its region)",
    "NotFoundException": "topic not found (check the ARN and its region)",
    "AuthorizationError": "not authorized (needs sns:Publish on the topic)",
    "AccessDenied": "not authorized (needs sns:Publish on the topic)",
    "AccessDeniedException": "not authorized (needs sns:Publish on the topic)",
    "InvalidClientTokenId": "credentials rejected",
    "UnrecognizedClientException": "credentials rejected",
    "SignatureDoesNotMatch": "credentials rejected",
    "ExpiredToken": "credentials expired",
    "ExpiredTokenException": "credentials expired",
    "KMSAccessDenied": "the topic's KMS key denies this caller (needs kms:GenerateDataKey and kms:Decrypt)",
    "KMSDisabled": "the topic's KMS key is disabled",
}


def describe_sns_error(exc: BaseException) -> str:
    """One line for a failed publish."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        detail = sanitize.secrets(error.get("Message") or "")
        reason = SNS_ERRORS.get(code)
        return f"{reason} ({code}{': ' + detail if detail else ''})" if reason else f"{code}: {detail}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError | ProfileNotFound):
        return (f"no usable AWS credentials ({sanitize.secrets(exc)}); set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach SNS ({sanitize.secrets(exc)})"
    if isinstance(exc, NoRegionError):
        return "no region for SNS"
    return f"{type(exc).__name__}: {sanitize.secrets(exc)}"


class SnsNotifier:
    """Publishes the pending alerts to one topic: a human summary, then the alerts as JSON after a
    ``--- alerts (JSON) ---`` line, split into several messages when one would pass 256 KiB."""

    def __init__(self, client: SNSClient, topic_arn: str, *, min_severity: str = "info",
                 max_bytes: int = SNS_MAX_BYTES) -> None:
        parse_topic_arn(topic_arn)
        self.client = client
        self.topic_arn = topic_arn
        self.name = f"sns:{topic_arn}"
        self.label = f"sns {topic_arn}"
        self.min_severity = min_severity
        self.max_bytes = max_bytes
        self.fifo = topic_arn.endswith(".fifo")

    # message assembly
    def _subject(self, items: Sequence[Pending], part: int, parts: int) -> str:
        suffix = f" ({part}/{parts})" if parts > 1 else ""
        text = sanitize.text(f"[analyzer] {headline(items)}").encode("ascii", "replace").decode()
        return truncate(text, SNS_SUBJECT_MAX - len(suffix)).replace("…", ".") + suffix

    def _message(self, items: Sequence[Pending], texts: Sequence[str], entries: Sequence[str], part: int, parts: int,
                 context: NotifyContext) -> str:
        header = [headline(items) + (f" (message {part} of {parts})" if parts > 1 else ""),
                  f"Window: {_window(context)}"]
        header += [f"Report: {plain(path, 300)}" for path in context.reports[:4]]
        document = (f'{{"format":"analyzer.alerts/v1","part":{part},"parts":{parts},'
                    f'"window":{dumps({"since": iso(context.since), "until": iso(context.until)})},'
                    f'"alerts":[{",".join(entries)}]}}')
        return "\n".join([*header, "", "\n\n".join(texts), "", JSON_MARKER, document]) + "\n"

    def messages(self, items: Sequence[Pending], context: NotifyContext) -> list[tuple[list[Pending], str, str]]:
        """The (alerts, subject, message) of each publish, every message within ``max_bytes``."""
        if not items:
            return []
        overhead = len(self._message(items, [], [], 999, 999, context).encode()) + 64
        room = self.max_bytes - overhead
        texts = [_plain_alert(i + 1, item) for i, item in enumerate(items)]
        entries = [_json_entry(item, room // 2) for item in items]
        sizes = [len(t.encode()) + 2 + len(e) + 1 for t, e in zip(texts, entries, strict=True)]
        groups: list[list[int]] = [[]]
        used = 0
        for i, size in enumerate(sizes):
            if size > room:  # even cut down, this alert's summary is too long: keep only its JSON
                texts[i] = truncate(texts[i], 200)
                size = len(texts[i].encode()) + 2 + len(entries[i]) + 1
            if groups[-1] and used + size > room:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += size
        result = []
        for part, group in enumerate(groups, start=1):
            chosen = [items[i] for i in group]
            message = self._message(chosen, [texts[i] for i in group], [entries[i] for i in group], part,
                                    len(groups), context)
            assert len(message.encode()) <= self.max_bytes, "SNS message budget miscounted"
            result.append((chosen, self._subject(chosen, part, len(groups)), message))
        return result

    def send(self, items: Sequence[Pending], context: NotifyContext) -> Delivery:
        delivery = Delivery(self.name, self.label)
        for chosen, subject, message in self.messages(items, context):
            params: dict[str, Any] = {"TopicArn": self.topic_arn, "Subject": subject, "Message": message}
            if self.fifo:
                params["MessageGroupId"] = "analyzer-nightly"
                params["MessageDeduplicationId"] = hashlib.sha256(message.encode()).hexdigest()
            try:
                self.client.publish(**params)
            except (ClientError, BotoCoreError) as exc:
                delivery.error = describe_sns_error(exc)
                break
            delivery.messages += 1
            delivery.sent.extend(p.fingerprint for p in chosen)
        sent = set(delivery.sent)
        delivery.failed = [p.fingerprint for p in items if p.fingerprint not in sent]
        return delivery


# -- webhook ------------------------------------------------------------------------------------------
def _status_phrase(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "(an unknown status)"


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/…``: the host says where; path, query and user info (the secrets)
    stay out."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = sanitize.text(parts.hostname or "?")
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    return f"{sanitize.text(parts.scheme) or '?'}://{host}{port}/…"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be replayed as a GET without its body: report it instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None, cap: float) -> float | None:
    try:
        return min(max(float(value), 0.0), cap) if value else None
    except ValueError:
        return None


class WebhookNotifier:
    """POSTs Slack-compatible JSON (``{"text": …}`` plus optional ``blocks``) to a webhook URL.

    Up to ``max_alerts`` alerts per message. Each POST is tried ``1 + retries`` times, with
    exponential backoff and jitter, on 5xx, 429 (``Retry-After`` honoured, capped), timeouts and
    connection errors; any other answer is final. The first message that cannot be delivered stops
    the run's sending (its alerts and the rest stay pending).
    """

    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        label: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        blocks: bool = True,
        include_alerts: bool = False,
        max_alerts: int = 20,
        min_severity: str = "info",
        opener: urllib.request.OpenerDirector | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a bad port, brackets...
            valid = False
        if not valid or any(c.isspace() or not c.isprintable() for c in url):
            raise AnalyzerError(f"{label or name}: the webhook URL must be http(s)://HOST/… without spaces, got "
                                f"{redact_url(url)}")
        self.url = url
        self.name = name
        self.label = label or f"webhook {redact_url(url)}"
        self.timeout = timeout
        self.retries = max(retries, 0)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.blocks = blocks
        self.include_alerts = include_alerts
        self.max_alerts = max(1, min(max_alerts, 45))  # Slack: at most 50 blocks per message
        self.min_severity = min_severity
        self.opener = opener or urllib.request.build_opener(_NoRedirect())
        self.sleep = sleep

    def _scrub(self, text: str) -> str:
        """Belt and braces: no error text may carry the URL, its path, query or user info; every
        URL is cut to scheme://host by structure (:func:`sanitize.secrets`), then the exact parts
        of ours are removed in case one was quoted without its scheme."""
        parts = urllib.parse.urlsplit(self.url)
        text = sanitize.secrets(text)
        for secret in (parts.path, parts.query, parts.netloc.rpartition("@")[0]):
            for form in {secret, secret.replace("/", "\\/"), urllib.parse.quote(secret, safe="")}:
                if len(form) > 1:
                    text = text.replace(form, "…")
        return text

    def payload(self, items: Sequence[Pending], context: NotifyContext, part: int = 1,
                parts: int = 1) -> dict[str, Any]:
        """The JSON body of one message."""
        title = headline(items) + (f" ({part}/{parts})" if parts > 1 else "")
        where = f"Window: {slack(_window(context), 120)}" + "".join(
            f" · report `{slack(path, 200)}`" for path in context.reports[:2])
        lines = [self._alert_mrkdwn(item) for item in items]
        body: dict[str, Any] = {"text": truncate("\n".join([f"*{title}*", where, *lines]), 35_000)}
        if self.blocks:
            body["blocks"] = [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(title, 150)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(where, 2900)}]},
                *({"type": "section", "text": {"type": "mrkdwn", "text": truncate(line, 2900)}} for line in lines),
            ]
        if self.include_alerts:
            body["alerts"] = [json.loads(_json_entry(item, 64_000)) for item in items]
        return body

    def _alert_mrkdwn(self, item: Pending) -> str:
        alert = item.alert
        head = (f"• *[{slack(alert.get('severity'), 12)}]* {slack(alert.get('title'), 120)} "
                f"`{slack(alert.get('detection_id'), 80)}` ({item.change})")
        parts = [f"{name} `{value}`" if name != "events" else f"{name} {value}"
                 for name, value in _fields(alert, lambda v: slack(v))]
        return head + "\n" + " · ".join(parts)

    def _post(self, body: bytes) -> str | None:
        """None once delivered, else why not (one line, after the retries)."""
        error = "not attempted"
        for attempt in range(self.retries + 1):
            wait: float | None = None
            request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "analyzer-nightly"})
            try:
                with self.opener.open(request, timeout=self.timeout) as response:
                    response.read(65_536)
                return None
            except urllib.error.HTTPError as exc:
                # the body is never echoed: an endpoint may quote the URL back (its path is the secret),
                # in forms no substring search finds (JSON-escaped, encoded, cut in the middle)
                error = f"HTTP {exc.code} {_status_phrase(exc.code)}"
                if exc.code in (301, 302, 303, 307, 308):
                    error += " (redirects are not followed: use the final URL)"
                transient = exc.code >= 500 or exc.code in (408, 429)
                wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None, self.max_backoff * 2)
            except TimeoutError:
                error, transient = f"no answer within {self.timeout:g} s", True
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, TimeoutError):
                    error = f"no answer within {self.timeout:g} s"
                else:
                    error = f"cannot connect: {sanitize.text(getattr(reason, 'strerror', None) or reason)}"
                transient = True
            except (http.client.HTTPException, OSError) as exc:
                error, transient = f"{type(exc).__name__}: {sanitize.text(exc)}", True
            except Exception as exc:  # e.g. http.client.InvalidURL, whose message quotes the URL
                return self._scrub(f"{type(exc).__name__}: {sanitize.text(exc)}")
            if not transient or attempt == self.retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                return self._scrub(error + tries)
            if wait is None:
                wait = min(self.backoff * 2**attempt, self.max_backoff) * (0.5 + random.random())  # noqa: S311
            self.sleep(wait)
        return self._scrub(error)

    def send(self, items: Sequence[Pending], context: NotifyContext) -> Delivery:
        delivery = Delivery(self.name, self.label)
        chunks = [list(items[i:i + self.max_alerts]) for i in range(0, len(items), self.max_alerts)]
        for part, chunk in enumerate(chunks, start=1):
            body = json.dumps(self.payload(chunk, context, part, len(chunks)), ensure_ascii=True).encode()
            error = self._post(body)
            if error is not None:
                delivery.error = error
                break
            delivery.messages += 1
            delivery.sent.extend(p.fingerprint for p in chunk)
        sent = set(delivery.sent)
        delivery.failed = [p.fingerprint for p in items if p.fingerprint not in sent]
        return delivery


# -- configuration ------------------------------------------------------------------------------------
def _severity(table: str, value: Any) -> str:
    text = str(value).lower()
    if text not in SEVERITIES:
        raise AnalyzerError(f"config: [{table}] min_severity = {value!r}: one of {', '.join(SEVERITIES)}")
    return text


def _number(table: str, key: str, value: Any, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise AnalyzerError(f"config: [{table}] {key} = {value!r}: a number, at least {minimum:g}")
    return float(value)


def notifiers_from_config(
    config: Mapping[str, Any],
    *,
    sns_topic_arn: str | None = None,
    webhook_url_env: str | None = None,
    environ: Mapping[str, str] | None = None,
    session: boto3.Session | None = None,
    sns_client: SNSClient | None = None,
) -> list[Notifier]:
    """The notifiers the ``[notify.sns]`` / ``[notify.webhook]`` tables (or the flags, which win) ask for.

    The webhook URL is read from the environment variable the configuration names (``url_env``);
    a missing variable is an error here, before the run does any work.
    """
    environ = os.environ if environ is None else environ
    notify = config.get("notify", {}) or {}
    notifiers: list[Notifier] = []

    sns_table = notify.get("sns", {}) or {}
    arn = sns_topic_arn or sns_table.get("topic_arn")
    if arn:
        parse_topic_arn(str(arn))
        client = sns_client or make_sns_client(str(arn), session=session, endpoint_url=sns_table.get("endpoint_url"))
        notifiers.append(SnsNotifier(client, str(arn),
                                     min_severity=_severity("notify.sns", sns_table.get("min_severity", "info"))))

    hook = notify.get("webhook", {}) or {}
    variable = webhook_url_env or hook.get("url_env") or (DEFAULT_WEBHOOK_ENV if "webhook" in notify else None)
    if variable:
        variable = str(variable)
        if not _ENV_NAME.match(variable):
            raise AnalyzerError(f"webhook: {variable!r} is not an environment variable name")
        url = environ.get(variable, "").strip()
        if not url:
            raise AnalyzerError(f"webhook: the environment variable {variable} (holding the webhook URL) is not set")
        notifiers.append(WebhookNotifier(
            url,
            name=f"webhook:{variable}",
            label=f"webhook ${variable} ({redact_url(url)})",
            timeout=_number("notify.webhook", "timeout", hook.get("timeout", 10), minimum=0.01),
            retries=int(_number("notify.webhook", "retries", hook.get("retries", 3), minimum=0)),
            backoff=_number("notify.webhook", "backoff", hook.get("backoff", 1.0), minimum=0),
            blocks=bool(hook.get("blocks", True)),
            include_alerts=bool(hook.get("include_alerts", False)),
            max_alerts=int(_number("notify.webhook", "max_alerts", hook.get("max_alerts", 20), minimum=1)),
            min_severity=_severity("notify.webhook", hook.get("min_severity", "info")),
        ))
    return notifiers
