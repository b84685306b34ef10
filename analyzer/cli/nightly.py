"""`analyzer nightly`: the unattended job (pull, detect, report, notify only what is new)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import (
    ConfigOption,
    DataOption,
    QuietOption,
    VerboseOption,
    command,
    load_config,
    print_note,
    stderr,
    stdout,
)
from analyzer.cli.detect import Severity
from analyzer.cli.extra import QueriesOption, SigmaOption, run_catalogue
from analyzer.cli.ingest import print_summary
from analyzer.errors import AnalyzerError, UsageError

if TYPE_CHECKING:
    from analyzer.config import Config
    from analyzer.jobs.nightly import NightlyResult
    from analyzer.jobs.progress import Progress
    from analyzer.sources.s3 import S3Source

# The nightly job (ingest pipeline, boto3, notifiers) is imported when it runs: start-up time.

NIGHTLY_EXIT_CODES = (
    "Exit codes: 0 no alert at or above --fail-on to announce; 3 new alerts at or above --fail-on (or alerts "
    "an earlier run announced but could not deliver, sent now); 4 partial: some objects failed or records were "
    "quarantined, a notifier failed (its alerts are sent by the next run), the [posture] section could "
    "not read an account, or [nightly] verify could not check something (4 wins over 3); 5 the window "
    "held no events (a wrong source or dataset, or a quiet account); 1 error (configuration, credentials, "
    "unreadable dataset; nothing recorded); 2 usage error; 130 interrupted (rerun to resume)."
)
MAX_PRINTED_PROBLEMS = 50


def _source(given: str | None, config: Config) -> str:
    """--source, else [nightly] source, else the [pull] bucket and prefix."""
    from analyzer.jobs.sources import trail_url

    value = given or config.settings.nightly.source
    if not value:
        if not config.settings.pull.bucket:
            raise UsageError("give s3://BUCKET[/PREFIX] or a directory (or [nightly] source in the config)",
                             option="--source")
        return trail_url(None, config.settings.pull, option="--source")
    value = str(value)
    if value.startswith("s3:"):
        return trail_url(value, option="--source")
    if not Path(value).expanduser().is_dir():
        raise UsageError(f"{value}: not an s3:// URL or an existing directory", option="--source")
    return value


@contextmanager
def _progress(enabled: bool, source: S3Source | Path) -> Iterator[Callable[[Progress], None]]:
    from analyzer.cli.progress import ingest_progress, pull_progress

    if isinstance(source, Path):
        with ingest_progress(enabled) as update:
            yield update
    else:
        with pull_progress(enabled, source) as update:
            yield update


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _window(result: NightlyResult) -> Any:
    from analyzer.window import Window

    return Window(result.since, result.until)


def _print(result: NightlyResult, source: str, note: str | None) -> None:
    if result.pull is not None:
        listing = result.pull.listing
        digests = (f"; {listing.digests_listed:,} digest files listed, {listing.digests_fetched:,} fetched"
                   if listing.digests_listed else "")
        stdout.print(f"pull {visible(source)}: {result.pull.window}; listed {listing.objects_listed:,} objects, "
                     f"fetched {listing.objects_fetched:,} ({listing.bytes_fetched / 1e6:,.1f} MB){digests}",
                     markup=False)
    else:
        stdout.print(f"ingest {visible(source)}:", markup=False)
    print_summary(result.stats)
    changes = {c: sum(1 for a in result.alerts if a.change == c) for c in ("new", "escalated", "grew", "seen")}
    stdout.print(
        f"detect: {result.since:%Y-%m-%dT%H:%MZ} → {result.until:%Y-%m-%dT%H:%MZ}: "
        f"{_plural(len(result.alerts), 'alert')} "
        f"({changes['new']} new, {changes['escalated']} escalated, {changes['grew']} grown, {changes['seen']} already "
        f"reported); {result.findings} to report at or above {result.fail_on}", markup=False)
    if result.extent is not None and not result.no_data:
        stdout.print(f"window: {result.extent.describe(_window(result))}", markup=False)
    if result.verify is not None:
        checked = result.verify
        stdout.print(f"verify {visible(checked.target)}: {checked.digests_valid:,}/"
                     f"{checked.digests_valid + checked.digests_invalid:,} digest files valid, {checked.logs_valid:,}/"
                     f"{checked.logs_valid + checked.logs_invalid + checked.chain.unhashed:,} log files valid; "
                     f"{_plural(len(checked.findings), 'finding')} (alerts above)", markup=False)
    for path in result.reports:
        stdout.print(f"report: {visible(str(path.absolute()))}", markup=False)
    late = {p.fingerprint for p in result.delivered_late}
    for delivery in result.deliveries:
        if delivery.ok:
            earlier = sum(1 for f in delivery.sent if f in late)
            stdout.print(f"notify {visible(delivery.label)}: {_plural(len(delivery.sent), 'alert')} sent in "
                         f"{_plural(delivery.messages, 'message')}"
                         + (f" ({earlier:,} announced by an earlier run that could not deliver them)" if earlier
                            else ""), markup=False)
    if not result.complete:
        stdout.print("window: not moved (some prefixes or objects failed: the next run covers this window again)",
                     markup=False)
    print_note(note)


@command("nightly", epilog=NIGHTLY_EXIT_CODES, resumable=True)
def nightly_command(
    source: Annotated[str | None, typer.Option(
        "--source", "-s", metavar="s3://BUCKET[/PREFIX]|DIR",
        help="Where the logs are: the trail's bucket and prefix (the part before AWSLogs/; [pull] options such "
             "as profile, endpoint_url, accounts, regions apply), or a local directory. Default: [nightly] "
             "source, else [pull] bucket/prefix of the configuration file.")] = None,
    data: DataOption = Path("ctdata"),
    report_dir: Annotated[Path | None, typer.Option(
        file_okay=False, metavar="DIR", help="Where the dated report pair goes (report-YYYY-MM-DDTHHMMZ.html and "
        ".md; a rerun of the same window adds -2, -3...: a report is never replaced). Default: [nightly] "
        "report_dir, else DATA/_analyzer/reports.")] = None,
    report_url: Annotated[str | None, typer.Option(
        metavar="URL", help="Where the report folder is published (https://...): notifications link this URL "
        "plus the report's name. Default: [nightly] report_url, else the report's absolute path.")] = None,
    sns_topic_arn: Annotated[str | None, typer.Option(
        metavar="ARN", help="Publish new alerts to this SNS topic (needs sns:Publish). Default: [notify.sns] "
                            "topic_arn.")] = None,
    webhook_url_env: Annotated[str | None, typer.Option(
        metavar="NAME", help="Post new alerts (Slack-compatible JSON) to the URL held by this environment variable "
                             "(the URL is a secret: never printed). Default: [notify.webhook] url_env.")] = None,
    since: Annotated[str | None, typer.Option(
        metavar="TIME",
        help="Start of the window: ISO date/time or an age (36h, 7d). Default: the end of the last complete run "
             "minus --late-margin; 24h before --until on a first run ([nightly] first_run_lookback).")] = None,
    until: Annotated[str | None, typer.Option(
        metavar="TIME", help="End of the window (exclusive), same forms. Default: now. For replaying a past "
                             "night.")] = None,
    late_margin: Annotated[str | None, typer.Option(
        metavar="AGE", help="How far the window reaches back before the last run's end, for logs delivered late "
             "(default: [nightly] late_margin, else 2h).")] = None,
    fail_on: Annotated[Severity | None, typer.Option(
        help="Exit 3 when this run announces an alert at least this severe. Default: [nightly] fail_on, else "
             "[detect] fail_on, else high.")] = None,
    config: ConfigOption = None,
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    quiet: QuietOption = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, help="Stop (exit 1, nothing announced) when the detections run longer than this many "
        "seconds. Default: [nightly] timeout, else [detect] timeout, else no limit.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Pull what is new, run the detections over the new window, write a report, notify new alerts only.

    For cron, systemd timers and scheduled containers. Alert state (DATA/_analyzer/alerts.sqlite)
    remembers every alert announced and which notifier delivered it: a rerun or an overlapping
    window never notifies twice, an alert re-notifies only when its severity rises or its events
    double, and an alert a notifier failed to send is sent by the next run. Notifiers: SNS
    (summary plus the alerts as JSON, split to fit 256 KiB) and a Slack-compatible webhook, set by
    flags or [notify.sns] / [notify.webhook] in the configuration file. With [nightly] verify = true,
    the window's log integrity is verified too (as analyzer verify --data; verify_source = true: the
    source itself), and its findings are alerts like the others.

    Examples:

    \b
      analyzer nightly --source s3://my-trail-bucket --data /srv/ctdata \\
          --report-dir /srv/reports --sns-topic-arn arn:aws:sns:eu-west-1:111122223333:ct-alerts --quiet
      analyzer nightly --source ./AWSLogs --data ./ctdata --webhook-url-env SLACK_WEBHOOK_URL
      analyzer nightly --config /etc/analyzer.toml --quiet    # everything from [nightly], [pull], [notify.*]
    """
    from analyzer.alerts.notify import notifiers_from_config, parse_topic_arn
    from analyzer.jobs.nightly import NightlySettings, parse_duration, run_nightly
    from analyzer.jobs.sources import s3_source
    from analyzer.sources.s3 import make_session
    from analyzer.window import parse_window

    loaded = load_config(config, verbose)
    settings = NightlySettings.from_settings(loaded.settings)
    now = datetime.now(UTC)
    window = parse_window(since, until, now=now)  # the same checks and words as detect's and pull's
    overrides: dict[str, Any] = {}
    if late_margin is not None:
        try:
            overrides["late_margin"] = parse_duration(late_margin)
        except AnalyzerError as exc:
            raise UsageError(str(exc).replace("duration = ", "", 1), option="--late-margin") from None
    if fail_on is not None:
        overrides["fail_on"] = fail_on.value
    if timeout is not None:
        overrides["timeout"] = timeout
    if report_url is not None:
        overrides["report_url"] = report_url
    if overrides:
        settings = replace(settings, **overrides)
    if sns_topic_arn is not None:
        try:
            parse_topic_arn(sns_topic_arn)
        except AnalyzerError as exc:
            raise UsageError(str(exc), option="--sns-topic-arn") from None
    where = _source(source, loaded)
    folder = report_dir or loaded.settings.nightly.report_dir
    pull_config, sns_config = loaded.settings.pull, loaded.settings.notify.sns
    catalogue = run_catalogue(queries, sigma, quiet=quiet, config=loaded).catalogue
    loaded.check_params(catalogue)
    allowlist = loaded.allowlist()
    from analyzer.jobs.posture import nightly_job

    posture = nightly_job(data, loaded.settings.posture, allowlist=allowlist) if "posture" in loaded.data else None

    notifiers = notifiers_from_config(
        {"notify": loaded.table("notify")}, sns_topic_arn=sns_topic_arn, webhook_url_env=webhook_url_env,
        session=make_session((sns_config.profile if sns_config else None) or pull_config.profile)
        if sns_topic_arn or (sns_config and sns_config.topic_arn) else None,
    )
    origin: S3Source | Path
    if where.startswith("s3://"):
        origin = s3_source(where, pull_config, workers=settings.fetch_threads)  # [pull]: profile, endpoint...
    else:
        origin = Path(where).expanduser()
    from analyzer.jobs.verify import verify_job

    base = loaded.path.expanduser().parent if loaded.path is not None else Path()
    verify = verify_job(data, loaded.settings, source=origin, base=base)  # [nightly] verify: log integrity
    with _progress(not quiet, origin) as progress:
        result = run_nightly(
            data, origin, notifiers=notifiers, settings=settings, report_dir=Path(folder) if folder else None,
            since=window.since, until=window.until, now=now, catalogue=catalogue,
            params=loaded.settings.detect.params, allowlist=allowlist, progress=progress,
            posture=posture,  # [posture] in the file: the MFA posture section
            verify=verify,
        )
    for line in result.warnings:
        stderr.print(f"warning: {visible(line)}", markup=False)
    for line in result.problems[:MAX_PRINTED_PROBLEMS]:
        stderr.print(f"error: {visible(line)}", markup=False)
    if len(result.problems) > MAX_PRINTED_PROBLEMS:
        stderr.print(f"error: … and {len(result.problems) - MAX_PRINTED_PROBLEMS} more", markup=False)
    for delivery in result.failed_notifiers:
        stderr.print(f"error: notify {visible(delivery.label)}: {visible(delivery.error)}; "
                     f"{_plural(len(delivery.sent), 'alert')} sent, "
                     f"{_plural(len(delivery.failed), 'alert')} kept for the next run", markup=False)
    if not quiet:
        flags = {"nightly.fail_on": fail_on, "detect.fail_on": fail_on, "nightly.timeout": timeout,
                 "detect.timeout": timeout, "nightly.late_margin": late_margin, "nightly.source": source,
                 "nightly.report_dir": report_dir, "nightly.report_url": report_url}
        note = loaded.note([*loaded.params_applied(), *loaded.applied(
            "nightly.fail_on", "detect.fail_on", "nightly.timeout", "detect.timeout", "nightly.late_margin",
            "nightly.renotify_growth", "nightly.report_url", "nightly.forget_alerts_after", "nightly.retention",
            overridden=[k for k, v in flags.items() if v is not None])],
            suppressed=result.run.suppressed)
        _print(result, where, note)
    raise typer.Exit(result.exit_code)
