"""`analyzer ingest`, `analyzer compact`, `analyzer schema`, `analyzer quarantine`: local files into the dataset."""

from __future__ import annotations

import json
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
from analyzer.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from analyzer.ingest import IngestStats
    from analyzer.store.compact import CompactStats

# The ingest pipeline, the store and the progress bars are imported by the commands that use them: start-up time.

#: analyzer.ingest.pipeline.BATCH_BYTES, for the option's default (tests/test_cli_startup.py checks they agree).
BATCH_BYTES = 12 * 1024 * 1024
#: analyzer.ingest.decode.MAX_OBJECT_BYTES, for the option's default (tests/test_ingest_isolation.py checks).
MAX_OBJECT_BYTES = 512 * 1024 * 1024


def parse_size(value: str) -> int:
    """``512MiB``, ``1G``, ``300mb``, ``1048576`` → bytes (units are powers of 1024)."""
    from analyzer.settings import parse_size as size

    try:
        return int(size(value, bare_bytes=True))
    except ValueError:
        raise UsageError(f"{value!r} is not a size (e.g. 512MiB, 2G)", option="--max-object-size") from None


MaxObjectSizeOption = Annotated[
    str | None,
    typer.Option(
        "--max-object-size", metavar="SIZE",
        help="Largest uncompressed size of one log object (e.g. 512MiB, 2G); a larger one fails, named, "
        f"instead of exhausting memory. Default: [ingest] max_object_size, else {MAX_OBJECT_BYTES // 2**20}MiB.",
    ),
]


def print_summary(stats: IngestStats) -> None:
    """The final summary of an ingest or pull run, and every failure by name."""
    seconds = max(stats.seconds, 1e-6)
    stdout.print(
        f"files: {stats.ingested:,} ingested, {stats.unchanged:,} already in the dataset, "
        f"{stats.skipped:,} skipped, {stats.failed:,} failed", markup=False,
    )
    stdout.print(
        f"events: {stats.events:,} in {seconds:,.1f} s ({stats.events / seconds:,.0f} events/s, "
        f"{stats.bytes_uncompressed / 1e6 / seconds:,.1f} MB/s); {stats.quarantined:,} records quarantined; "
        f"{stats.duplicates:,} duplicate deliveries in the dataset", markup=False,
    )
    if stats.same_content:
        stdout.print(f"versions: {stats.same_content:,} file(s) at a new version with the same content "
                     "(recorded, not ingested again)", markup=False)
    for rewrite in stats.rewrites:
        stdout.print(f"{visible(rewrite)} (the old rows are kept in events_superseded)", markup=False)
    for uri, reason in stats.failures:
        stdout.print(f"failed: {visible(uri)}: {visible(reason)}", markup=False)  # keys are attacker-chosen
    if stats.retried or stats.still_failing:
        stdout.print(f"retries: {stats.retried:,} earlier failure(s) tried again; {stats.still_failing:,} failure(s) "
                     "remain, retried by every run (`analyzer failures --data DIR` lists them)", markup=False)
    for uri, reason in stats.warnings:
        stdout.print(f"warning: {visible(uri)}: {visible(reason)}", markup=False)
    if stats.compaction and stats.compaction.rewritten:
        print_compaction(stats.compaction)
    if stats.quarantined:
        stdout.print("quarantined records are listed by `analyzer quarantine --data DIR`", markup=False)


def print_compaction(stats: CompactStats) -> None:
    stdout.print(
        f"compacted: {stats.replaced:,} files into {stats.rewritten:,} in {stats.partitions:,} day partition(s), "
        f"{stats.rows:,} rows in {stats.seconds:,.1f} s", markup=False,
    )


@command("ingest", epilog=WRITER_EXIT_CODES, resumable=True)
def ingest_command(
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH", help="Log files or directories (walked recursively). For S3, use `analyzer pull`.",
        show_default=False)],
    data: DataOption = Path("ctdata"),
    workers: Annotated[int | None, typer.Option(
        help="Worker processes (default: [ingest] workers, else one per core).", min=1)] = None,
    quiet: QuietOption = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Say which configuration file was loaded, and list skipped files.")] = False,
    batch_mb: Annotated[
        float | None, typer.Option(help="Compressed input per worker batch in MiB (tuning: memory vs. file count; "
                                   f"default: [ingest] batch_size, else {BATCH_BYTES / 2**20:g}).", min=0.001)
    ] = None,
    compact_partitions: Annotated[
        bool | None,
        typer.Option(
            "--compact/--no-compact",
            help="Merge each day the run touched into one sorted file afterwards (faster queries). "
            "--no-compact leaves it to the next ingest or `analyzer compact`. Default: [ingest] compact, else "
            "--compact.",
        ),
    ] = None,
    max_object_size: MaxObjectSizeOption = None,
    config: ConfigOption = None,
) -> None:
    """Ingest CloudTrail log files into the Parquet dataset.

    Accepts CloudTrail's gzipped {"Records": [...]} files, the same uncompressed, JSON arrays of
    records and JSON Lines, and the other shapes CloudTrail travels in (EventBridge events,
    CloudWatch Logs payloads and exports, lookup-events output, CloudTrail Lake results). Objects
    already ingested are not read again; digest files hold no events and are recorded for
    `analyzer verify --data`; non-CloudTrail files are skipped and counted. Ctrl-C stops the run; rerun to resume.

    Example: analyzer ingest ./AWSLogs --data ./ctdata
    """
    from analyzer.cli.progress import ingest_progress
    from analyzer.jobs.ingest import local_paths, run_ingest

    loaded = load_config(config, verbose)
    table = loaded.settings.ingest
    max_object_bytes = parse_size(max_object_size) if max_object_size else table.max_object_size or MAX_OBJECT_BYTES
    batch_bytes = int(batch_mb * 2**20) if batch_mb is not None else table.batch_size or BATCH_BYTES
    compact = compact_partitions if compact_partitions is not None else table.compact is not False
    folders = local_paths(paths)  # an s3:// URL is pull's: a usage error before the progress bar starts
    with ingest_progress(not quiet) as progress:
        stats = run_ingest(folders, data, workers=workers or table.workers, batch_bytes=batch_bytes,
                           progress=progress, compact=compact, max_object_bytes=max_object_bytes)
    if not quiet:
        print_summary(stats)
        if verbose:
            for uri, reason in stats.skips:
                stdout.print(f"skipped: {visible(uri)}: {visible(reason)}", markup=False)
        given = {"ingest.workers": workers, "ingest.batch_size": batch_mb, "ingest.compact": compact_partitions,
                 "ingest.max_object_size": max_object_size}
        print_note(loaded.note(loaded.applied(*given, overridden=[k for k, v in given.items() if v is not None])))
    raise typer.Exit(stats.exit_code)


@command("compact", resumable=True)
def compact_command(
    data: DataOption = Path("ctdata"),
    all_days: Annotated[
        bool, typer.Option("--all", help="Examine every day partition, not only those ingests left uncompacted.")
    ] = False,
    quiet: QuietOption = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Merge each day partition's small files into one file sorted for the detections.

    Ingest does this by itself at the end of a run; run it after `ingest --no-compact`, or with
    --all to re-examine a whole dataset (once, for a dataset written before compaction existed).
    Safe to interrupt: the next writer finishes or undoes it.
    Exit codes: 0 done; 1 error; 4 some days could not be merged (named; their data stays correct).

    Example: analyzer compact --data ./ctdata
    """
    from analyzer.cli.progress import compact_progress
    from analyzer.store import Dataset
    from analyzer.store.compact import compact

    load_config(config, verbose)
    with Dataset(data, create=False) as dataset:
        dataset.lock()
        days = dataset.days() if all_days else None
        with compact_progress(not quiet) as progress:
            stats = compact(dataset, days, progress=progress)
    if not quiet:
        print_compaction(stats)
    for partition, reason in stats.failures:
        stderr.print(f"not compacted: {visible(partition)}: {visible(reason)}", markup=False)
    raise typer.Exit(ExitCode.PARTIAL if stats.failures else ExitCode.OK)


@command("schema")
def schema_command(config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """Print the dataset's canonical schema (CloudTrail's own field names).

    Example: analyzer schema
    """
    from analyzer.schema import describe

    load_config(config, verbose)
    stdout.print(describe(), markup=False)


@command("quarantine")
def quarantine_command(
    data: DataOption = Path("ctdata"),
    raw: Annotated[bool, typer.Option("--raw", help="Print the records as JSON Lines, raw text included.")] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List the records that could not be placed in the dataset, with their reasons.

    Example: analyzer quarantine --data ./ctdata
    """
    from analyzer.store import Dataset

    load_config(config, verbose)
    with Dataset(data, create=False) as dataset:
        count = 0
        for item in dataset.quarantined():
            count += 1
            if raw:
                stdout.print(json.dumps(item), markup=False)
            else:
                stdout.print(f"{visible(item['source_object'])}#{item['record_index']}: {visible(item['reason'])}",
                             markup=False)
        if not raw:
            stdout.print(f"{count} quarantined record(s)", markup=False)
