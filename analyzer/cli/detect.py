"""`analyzer detect` (run the catalogue, render a report) and `analyzer detections` (list, show).

``detect`` is parse → :func:`analyzer.jobs.detect.run_detect` → render: the flags become the job's
arguments (mistakes are usage errors, exit 2, before any work), the job returns the report and what
the window held, and this module writes the report and the summary lines.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from analyzer.alerts import Format
from analyzer.alerts.sanitize import visible
from analyzer.cli.app import (
    ConfigOption,
    DataOption,
    Group,
    QuietOption,
    VerboseOption,
    app,
    command,
    guarded,
    load_config,
    print_note,
    stderr,
    stdout,
)
from analyzer.cli.extra import QueriesOption, SigmaOption, run_catalogue
from analyzer.detect import SEVERITIES
from analyzer.errors import AnalyzerError, UsageError
from analyzer.files import write_text_atomic

if TYPE_CHECKING:
    from analyzer.alerts.outputs import Output
    from analyzer.config import Config
    from analyzer.detect import Catalogue
    from analyzer.jobs.detect import DetectReport

# The detection engine, Polars and DuckDB are imported by the commands that use them: start-up time.

DETECT_EXIT_CODES = (
    "Exit codes: 0 no alert at or above --fail-on; 3 alerts at or above --fail-on (the prowler "
    "convention, for schedulers); 5 no events in the window (a wrong --data, an empty dataset, a window "
    "past the end of the data: a warning says which); 1 error (unreadable dataset or configuration, a "
    "failing query); 2 usage error (bad option value, unknown detection id or parameter); 130 interrupted."
)

Severity = StrEnum("Severity", {name: name for name in SEVERITIES})  # type: ignore[misc]


def write_atomic(path: Path, text: str) -> None:
    """Write a report atomically (the output folder must exist)."""
    write_text_atomic(path, text)


def _cli_overrides(catalogue: Catalogue, only: list[str] | None, param: list[str] | None) -> dict[str, Any]:
    """Check ``--only`` and ``--param`` against the catalogue (mistakes there are usage errors, exit 2)."""
    from analyzer.detect import parse_param_overrides, resolve_params

    try:
        selected = catalogue.select(only)
    except AnalyzerError as exc:
        raise UsageError(str(exc), option="--only") from None
    try:
        overrides = parse_param_overrides(param or [])
        resolve_params(catalogue, selected, overrides)
    except AnalyzerError as exc:
        raise UsageError(str(exc), option="--param") from None
    return overrides


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


def _engine(option: Engine | None, config: Config) -> dict[str, Any]:
    """``run_detect``'s engine arguments: --engine, else [detect] engine; Spark's session from [spark]."""
    name = option.value if option else (config.settings.detect.engine or "duckdb")
    if name not in ("duckdb", "spark"):
        raise UsageError(f"[detect] engine = {name!r}: duckdb or spark", option="--engine")
    if name == "duckdb":
        return {}
    from analyzer.scale.spark import options_from

    return {"engine": "spark", "spark": options_from(config.settings.spark)}


def _fail_on(option: str | None, config: Config) -> str:
    return str(option or config.settings.detect.fail_on or "high")  # the config's value is checked at load


@command("detect", epilog=DETECT_EXIT_CODES)
def detect_command(
    data: DataOption = Path("ctdata"),
    since: Annotated[
        str | None,
        typer.Option(help="Start of the window (inclusive): 2026-11-20, 2026-11-20T10:00Z, now, or an age: 90m, 36h, "
                     "7d, 2w, 6mo, 1y, T-2h. Times are UTC unless they carry an offset. Default: the start of the "
                     "data."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End of the window (exclusive), same forms as --since. Default: the end of the data."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="ID", help="Run only this detection (repeatable). See `analyzer detections`."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="ID.NAME=VALUE",
                     help="Override a detection parameter (repeatable); wins over the config file."),
    ] = None,
    config: ConfigOption = None,
    fmt: Annotated[
        list[Format] | None,
        typer.Option("--format", "-f", metavar="FORMAT", help="Report format: table (terminal), json, jsonl (one "
                     "alert per line with its fingerprint, for SIEMs), markdown, html (one self-contained page), "
                     "csv (for spreadsheets), ocsf (OCSF Detection Findings, JSON Lines). Repeatable with "
                     "--output-dir. Default: from --output's suffix, else table."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write the report to this file (atomically) instead "
                     "of standard output; its suffix (.html .json .jsonl .md .csv .ocsf.json .txt) chooses the "
                     "format, and must agree with --format."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", file_okay=False, help="Write one file per --format into this folder "
                     "(made if missing): report.html, report.json, report.md, report.txt, alerts.jsonl, "
                     "alerts.csv, alerts.ocsf.jsonl. Default formats: html, json, jsonl, csv, ocsf."),
    ] = None,
    fail_on: Annotated[
        Severity | None,
        typer.Option(metavar="SEVERITY", help="Exit 3 when an alert is at least this severe: info, low, medium, "
                     "high or critical. Default: [detect] fail_on in the config, else high."),
    ] = None,
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    quiet: QuietOption = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Stop (exit 1) when the detections run longer than this many seconds "
                     "(default: [detect] timeout, else no limit)."),
    ] = None,
    engine: Annotated[Engine | None, typer.Option(
        metavar="ENGINE", help="duckdb (this machine, the default) or spark (needs analyzer[spark]; the session "
        "comes from [spark] in the config, spark-defaults.conf and PYSPARK_SUBMIT_ARGS). With spark, --data may "
        "be a published prefix Spark can read (s3a://BUCKET/PREFIX). Default: [detect] engine.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the detection catalogue over the dataset and report the alerts.

    Allowlists ([allowlist] in the config) suppress alerts; the summary says how many. Console
    sign-in MFA coverage (with/without MFA, federated; with --only, of the alerts' principals) is
    part of the table, json, markdown and html reports. At a terminal, a table longer than the
    screen opens in $PAGER (default: less -FRX; PAGER=cat turns it off). The summary says how many
    events the window holds and where the data starts and ends; a window without any is a warning
    and exit code 5, even with --quiet ("No alerts." over no data is no all-clear).

    Example: analyzer detect --data ./ctdata --since 7d --format html --output report.html
    """
    from analyzer.alerts.outputs import needs_signins, plan
    from analyzer.alerts.outputs import write as write_outputs
    from analyzer.detect import merge_overrides
    from analyzer.jobs.detect import run_detect
    from analyzer.settings import seconds
    from analyzer.window import parse_window

    settings = load_config(config, verbose)
    severity = _fail_on(fail_on.value if fail_on else None, settings)
    window = parse_window(since, until, now=datetime.now(UTC))  # usage errors before any work
    outputs = plan(fmt, output, output_dir)
    catalogue = run_catalogue(queries, sigma, quiet=quiet, config=settings).catalogue
    settings.check_params(catalogue)
    allowlist = settings.allowlist()
    overrides = _cli_overrides(catalogue, only, param)
    to_terminal = [(o.format, o.path) for o in outputs] == [(Format.table, None)]
    alerts_only = quiet and to_terminal

    result = run_detect(
        data, since=window.since, until=window.until, only=only,
        params=merge_overrides(settings.settings.detect.params, overrides), allowlist=allowlist,
        catalogue=catalogue, timeout=timeout if timeout is not None else seconds(settings.settings.detect.timeout),
        signins=needs_signins(outputs) and not alerts_only, coverage_scope="alerted" if only else "all",
        **_engine(engine, settings),
    )
    interactive = stdout.is_terminal
    write_outputs(result.report, outputs, width=stdout.width if interactive else 140, alerts_only=alerts_only,
                  color=interactive and not os.environ.get("NO_COLOR"), interactive=interactive,
                  screen_height=stdout.height)
    if result.no_data:  # even with --quiet: a cron job must not read "No alerts." over no data as an all-clear
        stderr.print(f"warning: {result.extent.describe(result.window)}")
    if not quiet:
        _print_summary(result, severity, outputs, to_terminal)
        flags = [key for key, given in (("detect.fail_on", fail_on), ("detect.timeout", timeout)) if given is not None]
        print_note(settings.note([*settings.params_applied(overrides),  # a stray ./analyzer.toml must not act unseen
                                  *settings.applied("detect.fail_on", "detect.timeout", overridden=flags)],
                                 suppressed=result.run.suppressed), to_stderr=not to_terminal)
    raise typer.Exit(result.exit_code(severity))


def _print_summary(result: DetectReport, severity: str, outputs: list[Output], to_terminal: bool) -> None:
    """The table has its own summary, followed by what the window held; other formats get one line on
    stderr (standard output is the report)."""
    if to_terminal:
        if not result.no_data:
            stdout.print(result.extent.describe(result.window))
        return
    summary = result.report.summary
    levels = ", ".join(f"{r['alerts']} {r['severity']}" for r in summary.by_severity.to_dicts() if r["alerts"])
    paths = [o.path for o in outputs if o.path]
    written = ", ".join(str(p) for p in paths)
    stderr.print(
        f"{summary.alerts} alert(s){f' ({levels})' if levels else ''} from {len(result.report.detections)} "
        f"detection(s); {summary.suppressed} suppressed by allowlists; {result.failing(severity)} at or above "
        f"{severity}" + ("" if result.no_data else f"; {result.extent.describe(result.window)}")
        + (f"; report{'s' if len(paths) > 1 else ''} written to {written}" if paths else "")
    )


# --- analyzer detections [show ID] ---------------------------------------------------------------


class Dialect(StrEnum):
    duckdb = "duckdb"
    spark = "spark"
    trino = "trino"
    athena = "athena"


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


detections_app = typer.Typer(name="detections", cls=Group, invoke_without_command=True, rich_markup_mode=None)
app.add_typer(detections_app)


@detections_app.callback(invoke_without_command=True)
@guarded
def detections_command(
    ctx: typer.Context,
    fmt: Annotated[
        ListFormat, typer.Option("--format", "-f", help="table, json, or markdown (the catalogue page).")
    ] = ListFormat.table,
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List the detection catalogue (id, severity, title, ATT&CK, CIS, parameters); `show ID` prints one.

    Example: analyzer detections --format json
    """
    from analyzer.cli.docs import catalogue_markdown, detection_dict  # docs imports the whole CLI: not at import

    settings = load_config(config, verbose)
    if ctx.invoked_subcommand is not None:
        return
    catalogue = run_catalogue(queries, sigma, quiet=True, config=settings).catalogue
    if fmt is ListFormat.json:
        stdout.print(json.dumps([detection_dict(d) for d in catalogue.values()], indent=2), markup=False)
    elif fmt is ListFormat.markdown:
        sys.stdout.write(catalogue_markdown(catalogue))
    else:
        console = Console(file=io.StringIO(), width=stdout.width if stdout.is_terminal else 140, highlight=False,
                          force_terminal=stdout.is_terminal, no_color=not stdout.is_terminal)
        console.print(_catalogue_table(catalogue))
        sys.stdout.write(console.file.getvalue())  # type: ignore[attr-defined]


def _catalogue_table(catalogue: Catalogue) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", title=f"{len(catalogue)} detections",
                  title_justify="left")
    for header in ("id", "severity", "title", "ATT&CK", "CIS (latest)", "parameters (defaults)"):
        table.add_column(header, overflow="fold", no_wrap=header not in ("title", "parameters (defaults)"))
    for d in catalogue.values():
        latest = max((c.version for c in d.cis), key=lambda v: tuple(int(p) for p in v.split(".")), default=None)
        table.add_row(
            Text(d.id), Text(d.severity), Text(d.title),
            Text("\n".join(t.technique for t in d.attack)),
            Text("\n".join(f"v{c.version} {c.control}" for c in d.cis if c.version == latest)),
            Text("\n".join(f"{name}={json.dumps(p.default)}" for name, p in d.params.items())),
        )
    return table


@command("show", typer_app=detections_app)
def detections_show_command(
    detection_id: Annotated[str, typer.Argument(metavar="ID", help="A detection id (see `analyzer detections`).")],
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    dialect: Annotated[Dialect, typer.Option(
        metavar="DIALECT", help="The SQL's dialect: duckdb (as written), spark, trino or athena (transpiled; "
        "parameters as :name for Spark, ? in order for Trino/Athena).")] = Dialect.duckdb,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Print one detection: its metadata, parameters with defaults, and its SQL (in --dialect).

    Example: analyzer detections show console-login-without-mfa --dialect athena
    """
    from analyzer.cli.docs import detection_text

    settings = load_config(config, verbose)
    catalogue = run_catalogue(queries, sigma, quiet=True, config=settings).catalogue
    if detection_id not in catalogue:
        raise typer.BadParameter(f"unknown detection {detection_id!r} (known: {', '.join(catalogue)})",
                                 param_hint="'ID'")
    detection = catalogue[detection_id]
    text = detection_text(detection)  # a user's file or a Sigma rule may hold terminal escapes: shown, not obeyed
    if dialect is not Dialect.duckdb:
        from analyzer.scale.dialects import shown

        text = shown(detection, text, dialect.value)
    sys.stdout.write(text if detection.origin == "bundled" else visible(text, keep_newlines=True))
