"""`analyzer verify`: prove that no CloudTrail log file of a window was deleted or changed (digest validation).

Parse → :func:`analyzer.jobs.verify.run_verify` → a summary like ``aws cloudtrail validate-logs``'s
(and, with ``--format``/``--output``, the findings as an alert report).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts import Format
from analyzer.alerts.sanitize import visible
from analyzer.cli.app import (
    ConfigOption,
    QuietOption,
    VerboseOption,
    command,
    config_strings,
    load_config,
    stderr,
    stdout,
)
from analyzer.errors import UsageError

if TYPE_CHECKING:
    from analyzer.jobs.verify import VerifyResult

VERIFY_EXIT_CODES = (
    "Exit codes: 0 every digest and log file valid; 3 findings (a log file deleted or changed, a digest "
    "missing, invalid or out of the chain, a log file in no digest); 4 partial (a prefix, an object or a "
    "region's public keys could not be read: the summary says which); 1 error; 2 usage error; 130 interrupted."
)
TARGET = "s3://BUCKET[/PREFIX] | DIR"
MAX_PRINTED = 50
DEFAULT_LOOKBACK = timedelta(hours=24)


def _moment(value: datetime | None, fallback: str) -> str:
    return f"{value:%Y-%m-%dT%H:%M:%SZ}" if value else fallback


def print_summary(result: VerifyResult, *, to_stderr: bool = False) -> None:
    """The summary, as validate-logs words it, plus what was (not) checked of the signatures."""
    out = stderr if to_stderr else stdout
    since, until = (result.window.since, result.window.until) if result.window else (None, None)
    out.print(f"Results requested for {_moment(since, 'the first digest')} to {_moment(until, 'the last digest')}")
    first, last = result.found_span
    if result.digests_valid + result.digests_invalid == 0:
        out.print("No digests found")
    else:
        out.print(f"Results found for {_moment(first, '?')} to {_moment(last, '?')}:")
        out.print("")
        unhashed = result.chain.unhashed
        for valid, invalid, what in ((result.digests_valid, result.digests_invalid, "digest files valid"),
                                     (result.logs_valid, result.logs_invalid, "log files valid")):
            total = valid + invalid + (unhashed if what.startswith("log") else 0)
            noun = what.split(" files")[0]
            line = f"{valid:,}/{total:,} {what}"
            out.print(line + (f", {invalid:,}/{total:,} {noun} files INVALID" if invalid else ""))
    chain = result.chain
    sources = "; ".join(result.keys.sources) if result.keys is not None else ""
    if chain.signatures_checked or chain.signatures_unchecked:
        text = f"signatures: {chain.signatures_checked:,} checked"
        if chain.signatures_unchecked:
            why = "; ".join(sorted(chain.unchecked_why))
            text += f", {chain.signatures_unchecked:,} NOT checked ({why})"
        out.print(visible(text + (f" (public keys: {sources})" if sources and chain.signatures_checked else "")))
    if chain.unhashed:
        out.print(f"{chain.unhashed:,} log file(s) in the dataset: content hash not recorded (ingested before the "
                  "dataset kept one): present, not compared; verify the trail or a copy for those")
    if not result.online:
        unkeyed = "" if result.keys is not None else ", and no --public-key was given: signatures were not checked"
        out.print("offline copy: the hash chain (previousDigestHashValue) and the log hashes are checked; a copy "
                  f"keeps no x-amz-meta-signature{unkeyed}")
    if result.findings:
        out.print(f"{len(result.findings):,} finding(s), listed above")
    if result.problems:
        out.print(f"{len(result.problems):,} object(s) or prefix(es) could not be read: nothing is claimed about "
                  "them (listed above)")


@command("verify", epilog=VERIFY_EXIT_CODES)
def verify_command(
    target: Annotated[str | None, typer.Argument(
        metavar=TARGET,
        help="The trail's bucket and key prefix (the part before AWSLogs/), or a local copy in the S3 key layout "
             "(aws s3 sync, pull --keep-raw). Default: [pull] bucket/prefix of the configuration file.",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        help="Digests ending at or after this: ISO date/time or a look-back (36h, 7d). Default: 24h for S3, "
             "every digest for a local copy.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Digests ending before this, plus the hour after (a log delivered at the end is digested then). "
             "Default: now.")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", "-d", metavar="DIR", file_okay=False,
        help="Re-check the digests a dataset recorded as it ingested them (instead of a trail or a copy): their "
             "signatures (digests pulled from S3 keep theirs), the chain, and that every log file they list was "
             "ingested with that SHA-256 and every ingested one is listed.")] = None,
    public_key: Annotated[list[Path] | None, typer.Option(
        "--public-key", metavar="FILE", dir_okay=False,
        help="The JSON `aws cloudtrail list-public-keys --region R` prints, saved once (repeatable): check "
             "signatures without cloudtrail:ListPublicKeys. Default for S3: ListPublicKeys in each digest's "
             "region.")] = None,
    account: Annotated[list[str] | None, typer.Option(
        "--account", metavar="ID", help="Only this account id (repeatable).")] = None,
    region: Annotated[list[str] | None, typer.Option(
        "--region", metavar="REGION", help="Only digests of this region (repeatable); one --region is also the "
        "S3 client's region.")] = None,
    org_id: Annotated[str | None, typer.Option("--org-id", help="Only this organization trail (o-…).")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile (default: AWS_PROFILE or the standard "
                                                     "credential chain).")] = None,
    endpoint_url: Annotated[str | None, typer.Option(
        help="S3-compatible endpoint; overrides AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Concurrent reads and hashes (default 16).", min=1, max=512)] = None,
    fmt: Annotated[Format | None, typer.Option(
        "--format", "-f", metavar="FORMAT", help="Also write the findings as an alert report: table, json, jsonl, "
        "markdown, html, csv, ocsf (as detect's).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", dir_okay=False,
        help="Write that report to this file (its suffix chooses the format).")] = None,
    quiet: QuietOption = False,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Verify CloudTrail log file integrity: every digest of the window, its chain and the log files it lists.

    For each digest: its SHA256withRSA signature (the key its digestPublicKeyFingerprint names, from
    cloudtrail:ListPublicKeys or --public-key), its place in the chain (the previous digest exists,
    hashes to previousDigestHashValue and carries previousDigestSignature) and every log file it
    lists (exists, SHA-256 of its content matches). Log files of the window that no digest lists
    are reported too. A local copy keeps no S3 metadata: each digest's signature is then the one
    the next digest repeats (the newest stays unchecked), and without --public-key only the hash
    chain and the log hashes are checked (the summary says so). Needs s3:ListBucket, s3:GetObject
    and cloudtrail:ListPublicKeys (or --public-key).

    Examples:

      analyzer verify s3://my-trail-bucket --since 7d

      analyzer verify s3://logs/org --account 111122223333 --public-key keys.json

      analyzer verify ./copy-of-the-bucket --public-key keys.json    # offline

      analyzer verify s3://my-trail-bucket -o integrity.jsonl         # alerts, for a SIEM

      analyzer verify --data ./ctdata                                 # the dataset's own digests
    """
    from analyzer.alerts.outputs import plan
    from analyzer.jobs.verify import DEFAULT_WORKERS, api_keys, public_keys, run_verify
    from analyzer.window import Window, parse_window

    loaded = load_config(config_file, verbose)
    settings = loaded.settings
    table = settings.verify
    now = datetime.now(UTC)
    window = parse_window(since, until, now=now)
    outputs = plan([fmt] if fmt else None, output, None) if (fmt or output) else []
    base = loaded.path.expanduser().parent if loaded.path is not None else Path()
    key_files = list(public_key or []) or [base / Path(p).expanduser() for p in config_strings(table.public_keys)]
    keys = public_keys(key_files)
    threads = workers or table.workers or DEFAULT_WORKERS
    local = target is not None and not target.startswith("s3://")
    if data is not None:
        from analyzer.integrity.stores import DatasetStore

        if target is not None:
            raise UsageError(f"give {TARGET} or --data DIR, not both", option="--data")
        dataset = DatasetStore(data)
        key_source = None
        if keys is None and dataset.signed:  # digests pulled with their signatures: ListPublicKeys, as for S3
            from analyzer.sources.s3 import make_session

            session = make_session(profile or settings.pull.profile)
            key_source = lambda regions, start, end: api_keys(session, regions, start, end)  # noqa: E731
        result = run_verify(dataset, window=window if window.bounded else None, keys=keys, key_source=key_source,
                            workers=threads, now=now)
    elif local:
        from analyzer.integrity.stores import LocalStore

        assert target is not None
        if account or region or org_id or profile or endpoint_url:
            raise UsageError("--account, --region, --org-id, --profile and --endpoint-url are for s3:// targets",
                             option="--account")
        store = LocalStore(Path(target))
        chosen: Window | None = window if window.bounded else None
        result = run_verify(store, window=chosen, keys=keys, workers=threads, now=now)
    else:
        from analyzer.integrity.stores import S3Store
        from analyzer.jobs.sources import s3_source, trail_url
        from analyzer.sources.s3 import make_session

        where = trail_url(target, settings.pull)
        end = window.until or now
        window = Window(window.since or end - DEFAULT_LOOKBACK, end)
        source = s3_source(where, settings.pull, profile=profile, endpoint_url=endpoint_url, workers=threads,
                           accounts=account, regions=region, org_id=org_id)
        s3_store = S3Store(source, workers=threads)
        session = make_session(profile or settings.pull.profile)
        key_source = None if keys is not None else (lambda regions, start, end: api_keys(session, regions, start,
                                                                                          end))
        result = run_verify(s3_store, window=window, keys=keys, key_source=key_source, workers=threads, now=now)
    report_to_stdout = any(o.path is None for o in outputs)
    if not quiet:
        (stderr if report_to_stdout else stdout).print(
            visible(f"Validated digest and log files in {result.target}, window {result.window or 'every digest'}"))
    for finding in result.findings[:MAX_PRINTED]:
        stderr.print(visible(finding.line()))
    if len(result.findings) > MAX_PRINTED:
        stderr.print(f"… and {len(result.findings) - MAX_PRINTED:,} more findings")
    for where_, reason in result.problems[:MAX_PRINTED]:
        stderr.print(f"error: {visible(where_)}: {visible(reason)}")
    if len(result.problems) > MAX_PRINTED:
        stderr.print(f"error: … and {len(result.problems) - MAX_PRINTED:,} more")
    if not quiet:
        print_summary(result, to_stderr=report_to_stdout)
    if outputs:
        from analyzer.alerts.outputs import write
        from analyzer.alerts.summary import build_report
        from analyzer.integrity.findings import DETECTIONS

        frame = result.alerts()
        counts = {d: sum(f.detection_id == d for f in result.findings) for d in DETECTIONS}
        since_, until_ = (result.window.since, result.window.until) if result.window else (None, None)
        report = build_report(frame, since=since_, until=until_, generated_at=now, detections=counts)
        write(report, outputs)
    raise typer.Exit(result.exit_code)
