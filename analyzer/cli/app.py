"""The Typer application and the one place that turns library errors into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from analyzer.alerts.sanitize import visible
from analyzer.errors import AnalyzerError, ExitCode
from analyzer.timespec import parse_timespec

if TYPE_CHECKING:
    from analyzer.config import Config

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 error; 2 usage error; 3 findings at or above --fail-on; "
    "4 partial (some objects failed or records were quarantined: see the summary)."
)

app = typer.Typer(
    name="analyzer",
    help="CloudTrail analyzer: pull logs from S3, ingest them into Parquet, detect, report.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # ":x:" in an ARN stays text
stdout = Console(highlight=False, soft_wrap=True, emoji=False)

F = TypeVar("F", bound=Callable[..., Any])

DataOption = Annotated[
    Path,
    typer.Option("--data", "-d", help="Dataset directory (Hive-partitioned Parquet).", envvar="ANALYZER_DATA"),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary (for cron).")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help="Configuration file (TOML; keys: docs/config.md). Default: $ANALYZER_CONFIG, ./analyzer.toml, "
        "~/.config/analyzer/config.toml.",
        dir_okay=False,
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say which configuration file was loaded (or that none was).")
]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``app.command`` that prints an :class:`AnalyzerError` as one line and exits 1."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            try:
                return func(*a, **kw)
            except AnalyzerError as exc:
                stderr.print(f"error: {visible(str(exc), keep_newlines=True)}", markup=False)
                raise typer.Exit(ExitCode.ERROR) from None

        app.command(*args, **kwargs)(wrapper)
        return func

    return decorate


def load_config(config: Path | None, verbose: bool) -> Config:
    """The checked configuration, loaded first by every command (a bad file stops it: exit 1);
    ``-v`` says which file it is."""
    from analyzer.config import load

    loaded = load(config)
    if verbose:
        stderr.print(visible(loaded.describe()), markup=False)
    return loaded


def print_note(line: str | None, *, to_stderr: bool = False) -> None:
    """The summary line saying what the configuration file changed (see ``Config.note``)."""
    if line:
        (stderr if to_stderr else stdout).print(visible(line), markup=False)


def time_option(option: str, value: str | None, now: datetime) -> datetime | None:
    """A ``--since``/``--until`` value (ISO or an age such as ``36h``), as a usage error when wrong."""
    if value is None:
        return None
    try:
        return parse_timespec(value, now=now)
    except AnalyzerError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None


def config_strings(value: Any) -> list[str]:
    """A configuration value that may be one string or a list of them."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]

