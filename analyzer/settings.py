"""The configuration schema: every table and key the TOML file may hold, typed, with units.

One definition used three ways: :mod:`analyzer.config` checks a file against it (unknown tables
and keys, types, secrets), the commands read typed values from it, and
:mod:`analyzer.config_reference` writes ``docs/config.md`` from it. Every key is optional; an
absent key (``None`` here) means the built-in default, which the key's metadata states for the
docs. Units are explicit: a duration is ``"90d"``, ``"2h"``, ``"30m"`` or ``"45s"``, a size
``"512MiB"``; a bare number is an error (``retention = 90`` used to mean 90 seconds). Secrets are
never values here: a key such as ``url_env`` names the environment variable that holds one.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import msgspec

from analyzer.timespec import RELATIVE, UNITS

#: analyzer.alerts.shape.SEVERITIES, without importing the alerts package (tests/test_config.py checks they agree).
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_WEBHOOK_ENV = "ANALYZER_WEBHOOK_URL"  # analyzer.alerts.notify.DEFAULT_WEBHOOK_ENV (checked too)

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])i?b?|(b))?\s*", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GROWTH = "expected 0 (never) or a factor above 1"
_DURATION_FORMS = 'write "90d", "2h", "30m", "45s" or "2w"'


# -- value types: what a TOML value is decoded into (analyzer.config passes decode() as msgspec's dec_hook) ---------


class Duration(timedelta):
    """A length of time with its unit: ``"45s"``, ``"30m"``, ``"2h"``, ``"7d"``, ``"2w"``."""

    kind = "duration"


class Seconds(float):
    """A time in seconds: a duration such as ``"10s"``, or a plain number of seconds (the older form)."""

    kind = "seconds"


class Size(int):
    """Bytes, written with a unit: ``"64KiB"``, ``"512MiB"``, ``"2GiB"`` (powers of 1024)."""

    kind = "size"


class Severity(str):
    """An alert severity: ``"info"``, ``"low"``, ``"medium"``, ``"high"`` or ``"critical"``."""

    kind = "severity"


class EnvName(str):
    """The NAME of an environment variable (``"SLACK_WEBHOOK"``): the variable holds the secret, the file never does."""

    kind = "variable name"


class Growth(float):
    """A number above 1 (``2.0``: twice as many), or 0 for never."""

    kind = "factor"


def parse_duration(value: Any) -> Duration:
    """``"2h"`` → 2 hours. A bare number is refused: it has no unit."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"a bare number has no unit: {_DURATION_FORMS}")
    match = RELATIVE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"not a duration: {_DURATION_FORMS}")
    try:
        return Duration(**{UNITS[match.group(2).lower()]: int(match.group(1))})
    except OverflowError:
        raise ValueError("too long a duration") from None


def parse_size(value: Any, *, bare_bytes: bool = False) -> Size:
    """``"512MiB"``, ``"2G"``, ``"300mb"`` → bytes (every unit a power of 1024). A bare number is
    bytes only where ``bare_bytes`` says so (the ``--max-object-size`` flag); in the file it needs a unit."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if number or (match and not (match[2] or match[3]) and not bare_bytes):
        raise ValueError('a size needs a unit: "64KiB", "512MiB", "2GiB"')
    if not match or float(match[1]) <= 0:
        raise ValueError('not a size: write it as "64KiB", "512MiB" or "2GiB"')
    power = "kmgt".find(match[2].lower()) + 1 if match[2] else 0
    return Size(int(float(match[1]) * 1024**power))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    return float(value)


def decode(kind: type, value: Any) -> Any:
    """msgspec's ``dec_hook``: a TOML value as one of the types above (ValueError names what is expected)."""
    if kind is Duration:
        return parse_duration(value)
    if kind is Size:
        return parse_size(value)
    if kind is Seconds:
        if isinstance(value, str):
            return Seconds(parse_duration(value).total_seconds())
        try:
            seconds = _number(value)
        except TypeError:
            raise ValueError('expected seconds: a number, or a duration such as "10s"') from None
        if seconds < 0:
            raise ValueError("expected seconds, not negative")
        return Seconds(seconds)
    if kind is Severity:
        text = value.lower() if isinstance(value, str) else None
        if text not in SEVERITIES:
            raise ValueError(f"expected one of {', '.join(SEVERITIES)}")
        return Severity(text)
    if kind is EnvName:
        if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
            raise ValueError("expected the NAME of an environment variable (letters, digits, _), such as "
                             f"{DEFAULT_WEBHOOK_ENV}: the variable holds the secret, the file only names it")
        return EnvName(value)
    if kind is Growth:
        try:
            factor = _number(value)
        except TypeError:
            raise ValueError(_GROWTH) from None
        if factor != 0 and factor <= 1:
            raise ValueError(_GROWTH)
        return Growth(factor)
    raise NotImplementedError(kind)


def plain(value: Any) -> Any:
    """msgspec's ``enc_hook``: the types above as plain values (durations as seconds)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    for base in (float, int, str):
        if isinstance(value, base):
            return base(value)
    raise NotImplementedError(type(value))


def key(description: str, default: str | None = None, **constraints: Any) -> msgspec.Meta:
    """A key's documentation (and msgspec constraints such as ``ge=1``), for docs/config.md."""
    return msgspec.Meta(description=description, extra={"default": default} if default else {}, **constraints)


class Table(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A configuration table: unknown keys are errors."""


# -- the tables -----------------------------------------------------------------------------------------------------


class PullTable(Table):
    """`analyzer pull` (and `nightly` from S3): where the trail is and how to reach it. Flags win."""

    bucket: Annotated[str, key("The trail's bucket, when no s3:// URL is given.")] | None = None
    prefix: Annotated[str, key("The key prefix before AWSLogs/.", '""')] | None = None
    endpoint_url: Annotated[str, key(
        "An S3-compatible endpoint (no user:password@ in it).",
        "AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL")] | None = None
    profile: Annotated[str, key("The AWS profile (credentials never go in this file).",
                                "AWS_PROFILE, else the standard chain")] | None = None
    accounts: Annotated[str | list[str], key("Only these account ids.", "all")] | None = None
    regions: Annotated[str | list[str], key("Only logs of these regions.", "all")] | None = None
    org_id: Annotated[str, key("Only this organization trail (o-...).", "every organization")] | None = None
    workers: Annotated[int, key("Concurrent downloads and S3 connections.", "32", ge=1, le=512)] | None = None


class VerifyTable(Table):
    """`analyzer verify` (and `nightly`'s, with [nightly] verify): the public keys and the parallelism; the trail
    and its access are [pull]'s. Flags win."""

    public_keys: Annotated[str | list[str], key(
        "Files `aws cloudtrail list-public-keys` printed (JSON), relative to this file; --public-key wins.",
        "cloudtrail:ListPublicKeys in each digest's region")] | None = None
    workers: Annotated[int, key("Concurrent reads and hashes.", "16", ge=1, le=512)] | None = None


class IngestTable(Table):
    """`analyzer ingest`, and the ingest stage of `pull` and `nightly`. Flags win."""

    workers: Annotated[int, key("Worker processes.", "one per core", ge=1)] | None = None
    batch_size: Annotated[Size, key("Compressed input per worker batch (memory vs. file count).",
                                    '"12MiB"')] | None = None
    compact: Annotated[bool, key("Merge each day a run touched into one sorted file afterwards.",
                                 "true")] | None = None
    max_object_size: Annotated[Size, key(
        "Largest uncompressed size of one log object; a larger one fails, named.", '"512MiB"')] | None = None


class DetectTable(Table):
    """`analyzer detect` (and `nightly`'s detections, unless [nightly] says otherwise). Flags win."""

    fail_on: Annotated[Severity, key("Exit 3 when an alert is at least this severe.", '"high"')] | None = None
    timeout: Annotated[Duration, key("Stop (exit 1) when the detections run longer.", "no limit")] | None = None
    params: Annotated[dict[str, dict[str, bool | int | float | str]], key(
        'Detection parameters: [detect.params."ID"] NAME = VALUE (see docs/detections.md); --param wins.',
        "each detection's defaults")] | None = None
    queries: Annotated[list[str], key(
        "Folders of your own detections (<id>.sql + <id>.toml), run beside the bundled ones; relative to this "
        "file. --queries wins.", "[]")] | None = None
    sigma: Annotated[list[str], key(
        "Sigma rule folders or files (needs analyzer[sigma]); relative to this file. --sigma wins.",
        "[]")] | None = None
    engine: Annotated[str, key(
        'Where the detections run: "duckdb" (this machine) or "spark" (needs analyzer[spark]; see [spark]). '
        "--engine wins.", '"duckdb"')] | None = None


class SparkTable(Table):
    """`detect --engine spark`: the SparkSession the analyzer starts when none is running. Keys left out are
    Spark's own: spark-defaults.conf in $SPARK_CONF_DIR, $PYSPARK_SUBMIT_ARGS (spark-submit's flags)."""

    master: Annotated[str, key(
        "Where Spark runs: local[*], local[4], yarn, spark://HOST:7077, k8s://...",
        "Spark's: spark.master in spark-defaults.conf, else local[*]")] | None = None
    app_name: Annotated[str, key("The application's name (Spark UI, YARN).", '"analyzer"')] | None = None
    conf: Annotated[list[str], key(
        'Spark settings as spark-submit --conf takes them: ["spark.driver.memory=4g", '
        '"spark.sql.shuffle.partitions=64"]. S3 credentials never go here: Spark reads the standard chain.',
        "[]")] | None = None


class PublishTable(Table):
    """`analyzer publish`: where the dataset goes and how to reach it (the AWS CLI's conventions). Flags win."""

    url: Annotated[str, key("s3://BUCKET/PREFIX to publish to, when no URL is given.")] | None = None
    profile: Annotated[str, key("The AWS profile (credentials never go in this file).",
                                "AWS_PROFILE, else the standard chain")] | None = None
    endpoint_url: Annotated[str, key(
        "An S3-compatible endpoint (no user:password@ in it).",
        "AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL")] | None = None
    workers: Annotated[int, key("Concurrent uploads.", "8", ge=1, le=128)] | None = None
    part_size: Annotated[Size, key(
        "Files above this size go up in parts of this size (S3 multipart; at least 5MiB).",
        '"64MiB"')] | None = None


class AllowlistTable(Table):
    """Alerts about these are suppressed, and counted in every summary."""

    principals: Annotated[list[str], key("ARNs or user names.", "[]")] | None = None
    ips: Annotated[list[str], key("Addresses or CIDR networks.", "[]")] | None = None
    roles: Annotated[list[str], key("Role names or ARNs: their sessions are allowed.", "[]")] | None = None


class SqlTable(Table):
    """`analyzer sql`. Flags win."""

    timeout: Annotated[Duration, key("Stop (exit 1) when a query runs longer.", "no limit")] | None = None


class FailuresTable(Table):
    """`analyzer failures`. Flags win."""

    give_up_after: Annotated[Duration, key(
        "With --give-up: how old a failure must be (the --older-than default).", '"7d"')] | None = None


class NightlyTable(Table):
    """`analyzer nightly`. Flags win."""

    source: Annotated[str, key("s3://BUCKET[/PREFIX] or a local directory.", "[pull] bucket/prefix")] | None = None
    report_dir: Annotated[str, key("Where the dated reports go.", "DATA/_analyzer/reports")] | None = None
    late_margin: Annotated[Duration, key(
        "How far the window reaches back before the last complete run's end.", '"2h"')] | None = None
    first_run_lookback: Annotated[Duration, key("The window of the very first run.", '"24h"')] | None = None
    max_lookback: Annotated[Duration, key(
        "A default window never starts earlier (runs that keep failing).", '"7d"')] | None = None
    fail_on: Annotated[Severity, key(
        "Exit 3 when a run announces an alert this severe.", "[detect] fail_on, else \"high\"")] | None = None
    renotify_growth: Annotated[Growth, key(
        "Re-notify an alert whose events reach this factor of those last announced.", "2.0")] | None = None
    report_url: Annotated[str, key(
        "Where report_dir is published (https://...): notifications link this URL + the report's name.",
        "the report's absolute path")] | None = None
    forget_alerts_after: Annotated[Duration, key(
        "How long the alert state remembers an alert that stopped firing (an alert back within it is not "
        "announced again). Deletes no data and no report.", '"90d"')] | None = None
    retention: Annotated[Duration, key(
        "The former name of forget_alerts_after.", '"90d"')] | None = None
    workers: Annotated[int, key("Ingest worker processes.", "[ingest] workers, else one per core",
                                ge=1)] | None = None
    fetch_threads: Annotated[int, key("Concurrent S3 downloads.", "[pull] workers, else 32", ge=1)] | None = None
    timeout: Annotated[Duration, key("Stop (exit 1) when the detections run longer.",
                                     "[detect] timeout, else no limit")] | None = None
    verify: Annotated[bool, key(
        "After the detections, verify the window's log integrity (`analyzer verify --data`: the digests the "
        "dataset recorded, their signatures with [verify] public_keys or ListPublicKeys, the chain, every listed "
        "log file ingested with its SHA-256); findings are alerts, notified once.", "false")] | None = None
    verify_source: Annotated[bool, key(
        "Verify the source itself instead (the trail in S3, or the directory): every log file of the window read "
        "and hashed again, so a log file deleted after it was ingested is found too (twice the S3 reads).",
        "false")] | None = None


class WatchTable(Table):
    """`analyzer watch`: the queue of S3 notifications, batching, compaction of small batches. The S3 side is
    [pull]'s (profile, endpoint_url); alert state and [notify.*] are nightly's. Flags win."""

    queue_url: Annotated[str, key("The SQS queue S3 (or SNS, or EventBridge) sends ObjectCreated notifications "
                                  "to.")] | None = None
    profile: Annotated[str, key("The AWS profile for SQS and S3.", "[pull] profile, else the standard "
                                "chain")] | None = None
    endpoint_url: Annotated[str, key("An SQS-compatible endpoint (no user:password@ in it).",
                                     "AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL")] | None = None
    wait_time: Annotated[Seconds, key("Long polling: how long a receive waits for a message (at most 20s).",
                                      '"20s"')] | None = None
    visibility_timeout: Annotated[Duration, key(
        "How long a received message stays invisible; extended while its batch is in flight.",
        '"5m"')] | None = None
    retry_after: Annotated[Duration, key(
        "A message whose object failed is received again after this (the queue's maxReceiveCount then sends it "
        "to the dead-letter queue).", '"1m"')] | None = None
    batch_messages: Annotated[int, key("Messages ingested together at most.", "100", ge=1, le=10_000)] | None = None
    batch_window: Annotated[Seconds, key(
        "After the first message, how long to gather more into its batch (latency vs. batch size); longer "
        "while receives come back full (a backlog), up to batch_messages.",
        '"1s"')] | None = None
    compact_files: Annotated[int, key("Compact a day when it holds more files than this.", "32",
                                      ge=1)] | None = None
    compact_after: Annotated[Duration, key(
        "... or when its oldest file a compaction did not write is this old.", '"30m"')] | None = None
    fail_on: Annotated[Severity, key(
        "With --once: exit 3 when the run announced an alert this severe.",
        "[nightly] fail_on, else [detect] fail_on, else \"high\"")] | None = None
    workers: Annotated[int, key("Ingest worker processes per batch (1: in the watch process).", "1",
                                ge=1)] | None = None
    fetch_threads: Annotated[int, key("Concurrent S3 downloads per batch.", "8", ge=1, le=512)] | None = None
    verify: Annotated[bool, key(
        "When a batch ingested digest files, verify their hours as [nightly] verify does (the log files they list "
        "and not yet ingested are fetched first); findings are alerts, notified once.", "false")] | None = None


class SnsTable(Table):
    """Publish new alerts to an SNS topic (needs sns:Publish)."""

    topic_arn: Annotated[str, key("The topic's ARN.")] | None = None
    min_severity: Annotated[Severity, key("Only alerts at least this severe.", '"info"')] | None = None
    profile: Annotated[str, key("The AWS profile.", "[pull] profile, else the standard chain")] | None = None
    endpoint_url: Annotated[str, key("An SNS-compatible endpoint.",
                                     "AWS_ENDPOINT_URL_SNS, else AWS_ENDPOINT_URL")] | None = None


class WebhookTable(Table):
    """Post new alerts to a Slack-compatible webhook. The URL is a secret: it stays in the environment."""

    url_env: Annotated[EnvName, key("The NAME of the environment variable holding the URL.",
                                    f'"{DEFAULT_WEBHOOK_ENV}"')] | None = None
    min_severity: Annotated[Severity, key("Only alerts at least this severe.", '"info"')] | None = None
    timeout: Annotated[Seconds, key("Per attempt.", '"10s"')] | None = None
    retries: Annotated[int, key("More attempts on 5xx, 429, timeouts and connection errors.", "3",
                                ge=0)] | None = None
    backoff: Annotated[Seconds, key("Before the first retry, doubling (with jitter).", '"1s"')] | None = None
    max_alerts: Annotated[int, key("Alerts per message (Slack allows 50 blocks).", "20", ge=1)] | None = None
    blocks: Annotated[bool, key("false: {\"text\"} only, for receivers that know no blocks.", "true")] | None = None
    include_alerts: Annotated[bool, key("true: add \"alerts\" (the JSON alert shape) for other receivers.",
                                        "false")] | None = None


class NotifyTable(Table):
    """Where `analyzer nightly` sends new alerts (flags: --sns-topic-arn, --webhook-url-env)."""

    sns: SnsTable | None = None
    webhook: WebhookTable | None = None


class PostureTable(Table):
    """`analyzer posture` (and the posture section of `nightly`, which runs when this table is present). Flags win."""

    accounts: Annotated[str | list[str], key("Read these account ids (another than the caller's: through "
                                             "role_name).", "the caller's account")] | None = None
    organization: Annotated[bool, key("Read every ACTIVE account organizations:ListAccounts returns "
                                      "(through role_name).", "false")] | None = None
    role_name: Annotated[str, key("The role to assume in the other accounts (read-only: see the README).",
                                  "none")] | None = None
    profile: Annotated[str, key("The AWS profile.", "AWS_PROFILE, else the standard chain")] | None = None
    region: Annotated[str, key("The region of the STS and IAM clients.", "AWS_REGION, else us-east-1")] | None = None
    endpoint_url: Annotated[str, key("An IAM/STS/Organizations-compatible endpoint (no user:password@ in it).",
                                     "AWS_ENDPOINT_URL_IAM, _STS, _ORGANIZATIONS, else AWS_ENDPOINT_URL")] | None = None
    since: Annotated[Duration, key("The window: a console sign-in this recent is recent; a password unused "
                                   "for longer is dormant.", '"90d"')] | None = None
    fail_on: Annotated[Severity, key("Exit 3 when someone at least this severe needs MFA.",
                                     '"high"')] | None = None
    threads: Annotated[int, key("Accounts read at a time.", "4", ge=1, le=64)] | None = None


class Settings(Table):
    """The whole file. Every table is optional."""

    pull: PullTable = msgspec.field(default_factory=PullTable)
    ingest: IngestTable = msgspec.field(default_factory=IngestTable)
    detect: DetectTable = msgspec.field(default_factory=DetectTable)
    allowlist: AllowlistTable = msgspec.field(default_factory=AllowlistTable)
    sql: SqlTable = msgspec.field(default_factory=SqlTable)
    failures: FailuresTable = msgspec.field(default_factory=FailuresTable)
    nightly: NightlyTable = msgspec.field(default_factory=NightlyTable)
    notify: NotifyTable = msgspec.field(default_factory=NotifyTable)
    verify: VerifyTable = msgspec.field(default_factory=VerifyTable)
    posture: PostureTable = msgspec.field(default_factory=PostureTable)
    spark: SparkTable = msgspec.field(default_factory=SparkTable)
    publish: PublishTable = msgspec.field(default_factory=PublishTable)
    watch: WatchTable = msgspec.field(default_factory=WatchTable)


def seconds(value: timedelta | None) -> float | None:
    """A duration as the seconds a ``timeout=`` takes (None stays None)."""
    return value.total_seconds() if value is not None else None
