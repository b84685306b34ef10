"""`analyzer publish s3://BUCKET/PREFIX --data DIR`: the committed snapshot, uploaded incrementally.

Parse → :func:`analyzer.jobs.publish.publish` → one summary line. The work and its guarantees (whole
objects only, retired files deleted after their replacements are up, reruns converge) are the job's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
from analyzer.errors import UsageError

PUBLISH_EXIT_CODES = (
    "Exit codes: 0 the prefix holds the snapshot; 1 error (unreadable dataset, S3 refused: nothing half-written "
    "is visible, rerun to finish); 2 usage error; 130 interrupted (rerun to resume)."
)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled or not stderr.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    columns = (TextColumn("[bold]publish"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True, refresh_per_second=4) as progress:
        task = progress.add_task("publish", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, total=total, completed=done)

        yield update


@command("publish", epilog=PUBLISH_EXIT_CODES, resumable=True)
def publish_command(
    url: Annotated[
        str | None,
        typer.Argument(metavar="s3://BUCKET/PREFIX", help="Where to publish (default: [publish] url in the config)."),
    ] = None,
    data: DataOption = Path("ctdata"),
    profile: Annotated[
        str | None, typer.Option(help="AWS profile (default: AWS_PROFILE or the standard credential chain).")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint; overrides AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Concurrent uploads (default 8).", min=1, max=128)] = None,
    quiet: QuietOption = False,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Publish the dataset's committed snapshot to S3, for Athena and Spark: only what is new.

    Uploads the live data files (and the evidence of rewritten log objects) the prefix lacks, each as
    one object that appears whole or not at all (multipart above [publish] part_size), then the
    snapshot listing (_analyzer/snapshot.json, which `detect --engine spark` reads), then deletes the
    files the snapshot retired (days a compaction merged). A rerun uploads nothing; a run killed at
    any point, then rerun, converges. The manifest records what was published. Needs s3:ListBucket,
    s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on the prefix. See `analyzer athena ddl`.

    Example: analyzer publish s3://my-lake/cloudtrail --data ./ctdata
    """
    from analyzer.jobs.publish import DEFAULT_PART_SIZE, DEFAULT_WORKERS, MIN_PART_SIZE, publish

    loaded = load_config(config_file, verbose)
    table = loaded.settings.publish
    where = url or table.url
    if not where:
        raise UsageError("no s3://BUCKET/PREFIX given (nor [publish] url in the config)", option="URL")
    if not where.startswith("s3://") or len(where) <= len("s3://"):
        raise UsageError(f"{where!r}: expected s3://BUCKET/PREFIX", option="URL")
    part_size = int(table.part_size or DEFAULT_PART_SIZE)
    if part_size < MIN_PART_SIZE:
        raise UsageError("[publish] part_size: at least 5MiB (S3's smallest part)", option="--config")
    with _progress(not quiet) as progress:
        result = publish(
            data,
            where,
            profile=profile or table.profile,
            endpoint_url=endpoint_url or table.endpoint_url,
            workers=workers or table.workers or DEFAULT_WORKERS,
            part_size=part_size,
            progress=progress,
        )
    if not quiet:
        stdout.print(visible(result.describe()))
        given = {
            "publish.url": url,
            "publish.profile": profile,
            "publish.endpoint_url": endpoint_url,
            "publish.workers": workers,
        }
        print_note(
            loaded.note(loaded.applied(*given, "publish.part_size", overridden=[k for k, v in given.items() if v]))
        )
