"""`analyzer posture`: who still needs MFA, from IAM itself and from the CloudTrail dataset.

parse → :func:`analyzer.jobs.posture.run_posture` → render: the flags (over ``[posture]``) become a
:class:`~analyzer.sources.iam.PostureSource`, the job reads, stores and assesses, and this module
writes the report and says on stderr what was denied or read in part (one line each).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import (
    ConfigOption,
    DataOption,
    QuietOption,
    VerboseOption,
    command,
    config_strings,
    load_config,
    print_note,
    stderr,
    stdout,
)
from analyzer.cli.detect import Severity
from analyzer.errors import UsageError
from analyzer.posture.formats import PostureFormat

if TYPE_CHECKING:
    from analyzer.jobs.posture import PostureResult
    from analyzer.posture.model import AccountPosture

POSTURE_EXIT_CODES = (
    "Exit codes: 0 nobody at or above --fail-on needs MFA; 3 someone at or above --fail-on needs MFA; 4 partial: "
    "an account was denied or read in part, or the snapshot was not stored (stderr says which; 4 wins over 3); "
    "1 error (credentials, endpoint, no account readable); 2 usage error."
)
MAX_PRINTED_PROBLEMS = 50


@command("posture", epilog=POSTURE_EXIT_CODES)
def posture_command(
    data: DataOption = Path("ctdata"),
    profile: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="AWS profile (default: [posture] profile, else AWS_PROFILE, else the standard credential chain).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            metavar="REGION",
            help="Region of the STS and IAM clients (default: [posture] region, else AWS_REGION, else us-east-1).",
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="One endpoint for STS, IAM and Organizations (a local test server). Default: [posture] "
            "endpoint_url, else AWS_ENDPOINT_URL_IAM/_STS/_ORGANIZATIONS, else AWS_ENDPOINT_URL.",
        ),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account",
            metavar="ID",
            help="Read this account (repeatable; another than the caller's is read "
            "through --role-name). Default: [posture] accounts, else the caller's account (or, with --org, all).",
        ),
    ] = None,
    organization: Annotated[
        bool,
        typer.Option(
            "--org",
            help="Read every ACTIVE account of the organization (organizations:ListAccounts, from the "
            "management or a delegated administrator account), each through --role-name.",
        ),
    ] = False,
    role_name: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The role to assume in the other accounts (arn:aws:iam::ACCOUNT:role/NAME; read-only "
            "permissions: see the README). Default: [posture] role_name.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="The window: a console sign-in since then is recent, a password unused since then is "
            "dormant, and sign-ins without MFA are counted since then (an age such as 90d, or a date). Default: "
            "[posture] since, else 90d.",
        ),
    ] = None,
    fmt: Annotated[
        PostureFormat | None,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            help="table (terminal), json (everything), jsonl (the findings in the "
            "alert shape, with fingerprints, as detect writes them), markdown, html (one page with the coverage "
            "chart). Default: from --output's suffix, else table.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write the report to this file (atomically); its "
            "suffix (.html .json .jsonl .md .txt) chooses the format.",
        ),
    ] = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option(
            metavar="SEVERITY",
            help="Exit 3 when someone this severe needs MFA: critical (root without MFA, root "
            "keys), high (console sign-ins without MFA in the window), medium (console password, no MFA), low "
            "(access keys, no MFA). Default: [posture] fail_on, else high.",
        ),
    ] = None,
    store: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Store the snapshot in the dataset (DATA/_analyzer/posture/), for the coverage over time.",
        ),
    ] = True,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Call no AWS API: assess the newest stored snapshot again, with the dataset's "
            "sign-ins as they are now.",
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Accounts read at a time (default: [posture] threads, else 4)."),
    ] = None,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Who still needs MFA: every account's root user and IAM users, from IAM and from the CloudTrail logs.

    Per principal: console password, MFA and its kind, the last console sign-in (IAM's, the
    dataset's, the later of the two), sign-ins without MFA in the window, access keys. Then who
    needs MFA now, ranked: root users without MFA, root access keys, console users without MFA who
    signed in recently, console passwords without MFA not used in the window, access keys of users
    without MFA. Each snapshot is stored in the dataset, so the html report charts MFA coverage
    over time. The findings (mfa-not-enabled, root-without-mfa, root-access-keys-present,
    console-password-unused) have the alert shape: [allowlist] applies, and `nightly` notifies them
    when [posture] is in the configuration file.

    Examples:

    \b
      analyzer posture --data ./ctdata
      analyzer posture --org --role-name PostureAudit --profile audit -o posture.html
      analyzer posture --offline --format jsonl     # the stored snapshot's findings, for a SIEM
    """
    from analyzer.jobs.posture import DEFAULT_SINCE, run_posture
    from analyzer.posture.formats import format_for
    from analyzer.posture.render import render
    from analyzer.sources.iam import PostureSource
    from analyzer.sources.layout import is_account
    from analyzer.timespec import parse_timespec

    loaded = load_config(config, verbose)
    table = loaded.settings.posture
    now = datetime.now(UTC)
    try:
        chosen = format_for(output, fmt) if output is not None else (fmt or PostureFormat.table)
    except ValueError as exc:
        raise UsageError(str(exc), option="--output") from None
    if since is not None:
        try:
            start = parse_timespec(since, now=now)
        except Exception as exc:
            raise UsageError(str(exc), option="--since") from None
    else:
        start = now - table.since if table.since is not None else parse_timespec(DEFAULT_SINCE, now=now)
    if start >= now:
        raise UsageError(f"{since}: the window must start before now", option="--since")
    severity = str(fail_on.value if fail_on else table.fail_on or "high")
    source = None
    if not offline:
        accounts = list(account or config_strings(table.accounts))
        for given in accounts:
            if not is_account(given):
                raise UsageError(f"{visible(given)!r}: an account id is 12 digits", option="--account")
        source = PostureSource.connect(
            profile=profile or table.profile,
            region=region or table.region,
            endpoint_url=endpoint_url or table.endpoint_url,
            role_name=role_name or table.role_name,
            accounts=accounts,
            organization=organization or bool(table.organization),
            threads=threads or table.threads or 4,
        )

    def progress(read: AccountPosture) -> None:
        if not quiet and stderr.is_terminal:
            stderr.print(f"posture: {read.account_id}: {read.status}")

    result = run_posture(
        data,
        source,
        since=start,
        now=now,
        save=store and not offline,
        offline=offline,
        allowlist=loaded.allowlist(),
        progress=progress,
    )
    interactive = stdout.is_terminal and output is None
    text = render(
        result,
        chosen,
        width=stdout.width if interactive else 140,
        color=interactive and chosen is PostureFormat.table and not os.environ.get("NO_COLOR"),
    )
    if output is not None:
        from analyzer.files import write_text_atomic

        write_text_atomic(output, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    _print_problems(result)
    if not quiet:
        _print_summary(result, severity, output, chosen)
        flags = {"posture.fail_on": fail_on, "posture.since": since}
        print_note(
            loaded.note(
                loaded.applied(
                    "posture.fail_on",
                    "posture.since",
                    "posture.role_name",
                    "posture.organization",
                    "posture.accounts",
                    overridden=[k for k, v in flags.items() if v is not None],
                ),
                suppressed=result.assessment.suppressed,
            ),
            to_stderr=True,
        )
    raise typer.Exit(result.exit_code(severity))


def _print_problems(result: PostureResult) -> None:
    for line in result.problems[:MAX_PRINTED_PROBLEMS]:
        stderr.print(f"error: {visible(line)}")
    if len(result.problems) > MAX_PRINTED_PROBLEMS:
        stderr.print(f"error: … and {len(result.problems) - MAX_PRINTED_PROBLEMS} more")
    for line in result.notes[:MAX_PRINTED_PROBLEMS]:
        stderr.print(f"note: {visible(line)}")


def _print_summary(result: PostureResult, severity: str, output: Path | None, fmt: PostureFormat) -> None:
    a = result.assessment
    failing = len(a.failing(severity))
    where = (
        f"; snapshot stored: {visible(result.stored)}"
        if result.stored
        else ("; snapshot not stored" if not result.offline else "")
    )
    written = f"; report written to {visible(output)}" if output is not None else ""
    if fmt is PostureFormat.table and output is None:
        stdout.print(f"{failing} at or above {severity}{where}")
    else:
        stderr.print(
            f"posture: {len(a.needs)} principal(s) need MFA now, {failing} at or above {severity}; "
            f"{a.accounts_read} of {len(a.accounts)} account(s) read{where}{written}"
        )
