"""`analyzer pull`: CloudTrail logs from S3 into the dataset, only what is new."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import (
    WRITER_EXIT_CODES,
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
from analyzer.cli.ingest import MAX_OBJECT_BYTES, MaxObjectSizeOption, parse_size, print_summary
from analyzer.jobs.sources import DEFAULT_WORKERS, TRAIL

if TYPE_CHECKING:
    from analyzer.jobs.pull import PullResult

# boto3, the S3 source and the ingest pipeline are imported when a pull runs: start-up time.

MAX_PRINTED_PROBLEMS = 50


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def margin_text(result: PullResult) -> str:
    """What the late-delivery margin did: day folders are listed whole, the last one past ``until``."""
    first, last = result.listed_days
    _, until = result.window.span()
    return (f"day folders: {first:%Y-%m-%d} to {last:%Y-%m-%d}, each listed whole (CloudTrail delivers a file "
            f"minutes after its events, into the folder of the day it delivers): the files delivered on "
            f"{last:%Y-%m-%d} are ingested whole, events after {until:%Y-%m-%dT%H:%MZ} included; "
            "`detect --until` bounds what is analysed")


def _print_result(result: PullResult) -> None:
    listing = result.listing
    orgs = f", organization {', '.join(sorted(listing.orgs))}" if listing.orgs else ""
    stdout.print(
        f"window: {result.window}; listed {listing.objects_listed:,} objects under "
        f"{listing.prefixes_listed:,} prefixes ({_count(len(listing.accounts), 'account')}, "
        f"{_count(len(listing.regions), 'region')}{orgs}); fetched {listing.objects_fetched:,} "
        f"({listing.bytes_fetched / 1e6:,.1f} MB)",
        markup=False,
    )
    stdout.print(margin_text(result), markup=False)
    print_summary(result.stats)
    if result.watermark and result.failing:
        stdout.print(f"watermark: {result.watermark:%Y-%m-%dT%H:%M:%SZ}, held at the day of the oldest of "
                     f"{result.failing:,} failed object(s) (the next pull without --since retries them)", markup=False)
    elif result.watermark:
        stdout.print(f"watermark: {result.watermark:%Y-%m-%dT%H:%M:%SZ} (the next pull without --since "
                     "starts a day before it)", markup=False)
    else:
        kept = f"{result.previous_watermark:%Y-%m-%dT%H:%M:%SZ}" if result.previous_watermark else "none"
        why = ("some prefixes or objects failed: the next pull lists this window again" if listing.problems
               or result.failing else "already there: this window ends at or before it")
        stdout.print(f"watermark: kept at {kept} ({why})", markup=False)


@command("pull", epilog=WRITER_EXIT_CODES, resumable=True)
def pull_command(
    url: Annotated[str | None, typer.Argument(
        metavar=TRAIL,
        help="The trail's bucket and key prefix (the part before AWSLogs/); default: [pull] bucket/prefix "
             "of the configuration file.", show_default=False)] = None,
    data: DataOption = Path("ctdata"),
    since: Annotated[str | None, typer.Option(
        help="Start: ISO date/time (2024-05-01, 2024-05-01T12:00Z) or a look-back (36h, 7d). "
             "Default: a day before the last pull's end; 24h on a first pull.")] = None,
    until: Annotated[str | None, typer.Option(
        help="End (exclusive): ISO date/time or a look-back. Default: now. Day folders are listed whole, up "
             "to the day an hour after it (late deliveries): the files of that day are ingested whole, so "
             "the dataset may hold events after it (the summary says so).")] = None,
    account: Annotated[list[str] | None, typer.Option(
        "--account", metavar="ID", help="Only this account id (repeatable).")] = None,
    region: Annotated[list[str] | None, typer.Option(
        "--region", metavar="REGION", help="Only logs of this region (repeatable). One --region is also the "
        "S3 client's region (as in the AWS CLI); with several, AWS_REGION/the profile's, else the bucket's.")] = None,
    org_id: Annotated[str | None, typer.Option(
        "--org-id", help="Only this organization trail (o-…); default: every organization found.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile (default: AWS_PROFILE or the "
                                                     "standard credential chain).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        help="S3-compatible endpoint; overrides AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL.")] = None,
    workers: Annotated[int | None, typer.Option(
        help=f"Concurrent downloads and S3 connections (default {DEFAULT_WORKERS}).", min=1, max=512)] = None,
    keep_raw: Annotated[Path | None, typer.Option(
        "--keep-raw", help="Also save each fetched object under DIR/BUCKET/KEY.", metavar="DIR")] = None,
    quiet: QuietOption = False,
    max_object_size: MaxObjectSizeOption = None,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Pull CloudTrail logs from S3 into the dataset: only the window's prefixes, only new objects.

    Discovers organizations, accounts and regions under AWSLogs/ with delimiter listings, then
    lists only the YYYY/MM/DD/ folders of the window, in parallel. The same days' CloudTrail-Digest/
    files are fetched with their signatures (no events: recorded for `analyzer verify --data`);
    Insights and other services' files are never listed. Objects already ingested (same key and ETag) are not fetched
    again, so a rerun, or a run after a crash, fetches only what is missing. A denied prefix is
    reported and the rest is pulled (exit 4). Needs s3:ListBucket and s3:GetObject.

    Examples:

      analyzer pull s3://my-trail-bucket --data ./ctdata              # nightly: since the last pull

      analyzer pull s3://my-trail-bucket/org --since 7d --account 123456789012 --region eu-west-1

      analyzer pull s3://logs --since 2024-05-01 --until 2024-06-01 --profile audit --workers 64

      analyzer pull s3://trail --endpoint-url http://localhost:9000   # MinIO or another S3-compatible store

    Ctrl-C stops the run; rerun to resume (nothing is fetched or ingested twice).
    """
    from datetime import UTC, datetime

    from analyzer.cli.progress import pull_progress
    from analyzer.jobs.pull import run_pull
    from analyzer.jobs.sources import s3_source, trail_url
    from analyzer.window import parse_window

    loaded = load_config(config_file, verbose)
    url_given = url is not None
    config, ingest_table = loaded.settings.pull, loaded.settings.ingest
    where = trail_url(url, config)  # a usage error before any request
    now = datetime.now(UTC)
    window = parse_window(since, until, now=now)  # the same checks and words as detect's
    max_object_bytes = (parse_size(max_object_size) if max_object_size
                        else ingest_table.max_object_size or MAX_OBJECT_BYTES)
    threads = workers or config.workers or DEFAULT_WORKERS
    source = s3_source(where, config, profile=profile, endpoint_url=endpoint_url, workers=threads, accounts=account,
                       regions=region, org_id=org_id, keep_raw=keep_raw)
    with pull_progress(not quiet, source) as progress:
        result = run_pull(source, data, since=window.since, until=window.until, fetch_threads=threads,
                          progress=progress, now=now, max_object_bytes=max_object_bytes)
    for where, reason in result.listing.problems[:MAX_PRINTED_PROBLEMS]:
        stderr.print(f"error: {visible(where)}: {visible(reason)}", markup=False)
    if len(result.listing.problems) > MAX_PRINTED_PROBLEMS:
        stderr.print(f"error: … and {len(result.listing.problems) - MAX_PRINTED_PROBLEMS} more prefixes",
                     markup=False)
    if not quiet:
        _print_result(result)
        given = {"pull.bucket": url_given, "pull.prefix": url_given, "pull.workers": workers, "pull.profile": profile,
                 "pull.endpoint_url": endpoint_url, "pull.accounts": account, "pull.regions": region,
                 "pull.org_id": org_id, "ingest.max_object_size": max_object_size}
        print_note(loaded.note(loaded.applied(*given, overridden=[k for k, v in given.items() if v])))
    raise typer.Exit(result.exit_code)

