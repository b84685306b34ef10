"""`analyzer watch`: S3 notifications from SQS, ingested, detected and announced within seconds."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import ConfigOption, DataOption, QuietOption, VerboseOption, command, load_config, stderr, stdout
from analyzer.cli.detect import Severity
from analyzer.cli.extra import QueriesOption, SigmaOption, run_catalogue
from analyzer.errors import AnalyzerError, UsageError

if TYPE_CHECKING:
    from analyzer.jobs.watch import WatchStatus

# boto3, the ingest pipeline and DuckDB are imported when the watch starts: start-up time.

WATCH_EXIT_CODES = (
    "Exit codes: 0 stopped with nothing left failing; 3 (--once) an alert at or above --fail-on was announced; "
    "4 partial: a message was left on the queue because its object failed (or it is no notification), records "
    "were quarantined, or a notifier failed (4 wins over 3); 1 error (configuration, credentials, no such "
    "queue, or a queue failing for 15 minutes in a row, 30 seconds with --once); 2 usage error; 130 stopped by "
    "SIGTERM or Ctrl-C (in-flight messages finished or released)."
)
STATUS_EVERY = 60.0  # seconds between status lines when stderr is not a terminal (a service's journal)


def status_text(status: WatchStatus) -> str:
    """``12 messages (11 deleted, 1 failing) · 11 objects · 1,204 events · 2 alerts · lag 3.1s``."""
    lag = status.lag if status.lag is not None else None
    lag_text = f"lag {lag:,.1f}s" if lag is not None else "lag -"
    failing = f", {status.failing:,} failing" if status.failing else ""
    return (f"{status.received:,} messages ({status.deleted:,} deleted{failing}) · {status.objects:,} objects · "
            f"{status.events:,} events · {status.alerts:,} alerts · {lag_text}")


@contextmanager
def watch_status(enabled: bool) -> Iterator[Callable[[WatchStatus], None]]:
    """A status line on stderr: live at a terminal, one line a minute (when it changed) otherwise."""
    if not enabled:
        yield lambda status: None
        return
    if not stderr.is_terminal:
        last: list[float | str] = [time.monotonic(), ""]

        def every_minute(status: WatchStatus) -> None:
            text = status_text(status)
            if time.monotonic() - float(last[0]) >= STATUS_EVERY and text != last[1]:
                stderr.print(f"watch: {text}", markup=False)
                last[:] = [time.monotonic(), text]

        yield every_minute
        return
    from rich.live import Live
    from rich.text import Text

    with Live(Text("watch: waiting for messages"), console=stderr, transient=True, refresh_per_second=2) as live:

        def update(status: WatchStatus) -> None:
            live.update(Text(f"watch: {status_text(status)}"))

        yield update


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the job finishes or releases what is in flight); a second
    SIGINT interrupts at once (KeyboardInterrupt: what is not committed is redelivered)."""

    def handler(number: int, frame: FrameType | None) -> None:
        if number == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@command("watch", epilog=WATCH_EXIT_CODES, resumable=True)
def watch_command(
    queue_url: Annotated[str | None, typer.Option(
        metavar="URL", help="The SQS queue S3 notifications arrive on (directly, through SNS, or from an EventBridge "
        "rule on Object Created). Default: [watch] queue_url.")] = None,
    data: DataOption = Path("ctdata"),
    once: Annotated[bool, typer.Option(
        "--once", help="Drain the queue and exit (when a receive comes back empty): for tests and cron.")] = False,
    wait_time: Annotated[int | None, typer.Option(
        min=0, max=20, metavar="SECONDS", help="Long polling: how long a receive waits for a message (default: "
        "[watch] wait_time, else 20).")] = None,
    visibility_timeout: Annotated[int | None, typer.Option(
        min=1, max=43200, metavar="SECONDS", help="How long a received message stays invisible, extended while its "
        "batch is in flight (default: [watch] visibility_timeout, else 300).")] = None,
    fail_on: Annotated[Severity | None, typer.Option(
        help="With --once: exit 3 when an alert at least this severe was announced. Default: [watch] fail_on, "
             "else [nightly]'s, else [detect]'s, else high.")] = None,
    sns_topic_arn: Annotated[str | None, typer.Option(
        metavar="ARN", help="Publish new alerts to this SNS topic (needs sns:Publish). Default: [notify.sns] "
                            "topic_arn.")] = None,
    webhook_url_env: Annotated[str | None, typer.Option(
        metavar="NAME", help="Post new alerts (Slack-compatible JSON) to the URL held by this environment variable "
                             "(the URL is a secret: never printed). Default: [notify.webhook] url_env.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile for SQS and S3 (default: [watch] profile, else "
                                                     "[pull] profile, else the standard chain).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        help="An endpoint for both SQS and S3 (LocalStack, moto). Default: [watch] endpoint_url for SQS and [pull] "
             "endpoint_url for S3, else AWS_ENDPOINT_URL_SQS/_S3, else AWS_ENDPOINT_URL.")] = None,
    config: ConfigOption = None,
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Consume S3 notifications from an SQS queue: ingest each new log object, detect, notify new alerts at once.

    Each batch of messages is ingested into the dataset (the same manifest as pull: an object is
    ingested once however often its notification comes), the detections run over the new events
    (with each windowed detection's lookback), and new alerts go to the notifiers with nightly's
    alert state (what watch announced, nightly does not announce again). A message is deleted only
    after its objects are committed; one whose object fails stays on the queue for its redrive
    policy (maxReceiveCount, then the dead-letter queue), its reason printed with its receive count.
    SIGTERM or Ctrl-C: stop receiving, finish or release what is in flight. Needs
    sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes
    and s3:GetObject (docs/watch.md: wiring the bucket, the queue policy, a systemd unit).

    Examples:

    \b
      analyzer watch --queue-url https://sqs.eu-west-1.amazonaws.com/111122223333/ct-new-logs --data /srv/ctdata
      analyzer watch --config /etc/analyzer.toml --quiet            # [watch] queue_url, [notify.*]
      analyzer watch --queue-url URL --data ./ctdata --once --wait-time 2   # drain and exit (cron, tests)
    """
    from analyzer.alerts.notify import notifiers_from_config, parse_topic_arn
    from analyzer.jobs.interrupt import quiet_workers_on_ctrl_c
    from analyzer.jobs.stream import Detection
    from analyzer.jobs.watch import WatchSettings, run_watch, watch_verify_job
    from analyzer.sources.s3 import make_client, make_session
    from analyzer.sources.sqs import Queue, check_queue_url, make_sqs_client

    loaded = load_config(config, verbose)
    table, pull = loaded.settings.watch, loaded.settings.pull
    url = queue_url or table.queue_url
    if not url:
        raise UsageError("give the queue's URL (or [watch] queue_url in the configuration file)", option="--queue-url")
    url = check_queue_url(url, option="--queue-url")
    settings = WatchSettings.from_settings(loaded.settings)
    overrides: dict[str, object] = {}
    if wait_time is not None:
        overrides["wait_time"] = wait_time
    if visibility_timeout is not None:
        overrides["visibility_timeout"] = visibility_timeout
    if fail_on is not None:
        overrides["fail_on"] = fail_on.value
    settings = replace(settings, **overrides) if overrides else settings  # type: ignore[arg-type]
    if sns_topic_arn is not None:
        try:
            parse_topic_arn(sns_topic_arn)
        except AnalyzerError as exc:
            raise UsageError(str(exc), option="--sns-topic-arn") from None
    catalogue = run_catalogue(queries, sigma, quiet=quiet, config=loaded).catalogue
    loaded.check_params(catalogue)
    detection = Detection(catalogue, loaded.settings.detect.params, loaded.allowlist())
    session = make_session(profile or table.profile or pull.profile)
    sns_config = loaded.settings.notify.sns
    notifiers = notifiers_from_config(
        {"notify": loaded.table("notify")}, sns_topic_arn=sns_topic_arn, webhook_url_env=webhook_url_env,
        session=session if sns_topic_arn or (sns_config and sns_config.topic_arn) else None,
    )
    queue = Queue(make_sqs_client(url, session=session, endpoint_url=endpoint_url or table.endpoint_url), url)
    s3_client = make_client(session, endpoint_url=endpoint_url or pull.endpoint_url, pool=settings.fetch_threads)
    base = loaded.path.expanduser().parent if loaded.path is not None else Path()
    verify = watch_verify_job(data, loaded.settings, base=base)  # [watch] verify: each batch's digests' hours
    if settings.workers and settings.workers > 1:
        quiet_workers_on_ctrl_c()
    stop = threading.Event()

    def log(line: str) -> None:
        stderr.print(f"warning: {visible(line)}", markup=False)

    with stop_on_signals(stop), watch_status(not quiet) as progress:
        status = run_watch(queue, data, s3_client=s3_client, notifiers=notifiers, settings=settings,
                           detection=detection, once=once, stop=stop, progress=progress, log=log, verify=verify)
    if not quiet:
        _print(status)
    if status.interrupted:
        stderr.print("stopped: in-flight messages finished or released", markup=False)
    raise typer.Exit(status.exit_code)


def _print(status: WatchStatus) -> None:
    stdout.print(f"watch: {status_text(status)}", markup=False)
    stdout.print(
        f"objects: {status.objects:,} ingested, {status.unchanged:,} already in the dataset, {status.skipped:,} "
        f"skipped (not CloudTrail logs), {status.failed_objects:,} failed; {status.quarantined:,} records "
        f"quarantined; {status.tests:,} test events; {status.released:,} messages released", markup=False)
    if status.verified or status.integrity_findings:
        stdout.print(f"verify: {status.verified:,} digest files checked, {status.integrity_findings:,} integrity "
                     "findings", markup=False)
    for delivery in status.deliveries:
        if delivery.ok and delivery.sent:
            stdout.print(f"notify {visible(delivery.label)}: {len(delivery.sent):,} alert(s) sent in the last batch",
                         markup=False)
    for failing in status.failures:
        stdout.print(f"failing: {visible(str(failing))}", markup=False)
    for line in status.problems:
        stdout.print(f"problem: {visible(line)}", markup=False)
