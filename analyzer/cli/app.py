"""The Typer application, and the one place that turns errors into exit codes and one-line messages.

Every command is ``parse → call a job (:mod:`analyzer.jobs`) → render``; what goes wrong on the way
is mapped here, once (the README's exit-code table):

- a usage error (:class:`~analyzer.errors.UsageError` from the library, a flag Click or Typer
  refuses, a report option :mod:`analyzer.alerts.outputs` refuses): one line ``error: --since: …``,
  exit 2, never Click's four lines of usage and "Try … -h" (``-h`` is one keystroke away);
- any other :class:`~analyzer.errors.AnalyzerError`: one line, exit 1;
- Ctrl-C: ``interrupted; rerun to resume`` (a writer) or ``interrupted`` (a reader), exit 130.

Help texts are plain: value placeholders (``--since TIME``), never Typer's ``<int range>`` or
``<list[Path]>``; usage lines without ``{braces}``; command summaries never cut with "...".
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from analyzer.alerts.sanitize import visible
from analyzer.errors import AnalyzerError, ExitCode, UsageError

try:  # Typer >= 0.26 carries its own copy of Click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer on Click
    from click import exceptions as click_errors  # type: ignore[no-redef]

if TYPE_CHECKING:
    from analyzer.config import Config

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 error; 2 usage error; 3 findings at or above --fail-on (detect, nightly); "
    "4 partial (some objects failed or records were quarantined: see the summary); 5 no events in the "
    "window (detect, nightly); 130 interrupted."
)
#: For the commands that write the dataset (ingest, pull): no --fail-on, no findings.
WRITER_EXIT_CODES = (
    "Exit codes: 0 success; 1 error; 2 usage error; 4 partial (some objects failed or records were "
    "quarantined: see the summary); 130 interrupted (rerun to resume: nothing is ingested twice)."
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False, markup=False)  # ":x:" stays text
stdout = Console(highlight=False, soft_wrap=True, emoji=False, markup=False)

F = TypeVar("F", bound=Callable[..., Any])

# -- help without Typer's type labels --------------------------------------------------------------------------------

#: Placeholders for values whose option names say little on their own.
METAVARS = {
    "data": "DIR", "config": "FILE", "config_file": "FILE", "output": "FILE", "output_dir": "DIR", "file": "FILE",
    "since": "TIME", "until": "TIME", "older_than": "AGE", "timeout": "SECONDS", "workers": "N", "max_rows": "N",
    "batch_mb": "MIB", "fmt": "FORMAT", "fail_on": "SEVERITY", "endpoint_url": "URL", "paths": "PATH",
    "url": "s3://BUCKET[/PREFIX]", "query": "SQL",
}
_TYPE_LABEL = re.compile(r" <[^<>]*(?:<[^<>]*>[^<>]*)*>")
_RANGE = (
    (re.compile(r"\bx>=(-?[\d.]+)"), r"at least \1"),
    (re.compile(r"\bx<=(-?[\d.]+)"), r"at most \1"),
    (re.compile(r"\b(-?[\d.]+)<=x<=(-?[\d.]+)"), r"\1 to \2"),
)


def _placeholder(param: Any) -> str:
    name = param.name or "value"
    return METAVARS.get(name, name.upper().replace("_", "-"))


def _argument_name(param: Any) -> str:
    """``PATH...`` for an argument taking several values, ``ID`` for one."""
    return f"{param.metavar or _placeholder(param)}{'...' if param.nargs != 1 else ''}"


def _plain_help(text: str) -> str:
    for pattern, replacement in _RANGE:
        text = pattern.sub(replacement, text)
    return text


def _summary(help_text: str | None) -> str:
    """A command's first sentence, whole: the command list wraps it rather than cut it with "..."."""
    first = (help_text or "").strip().split("\n\n", 1)[0]
    return " ".join(first.split())


class Command(TyperCommand):
    """A command whose help shows placeholders (``--since TIME``) instead of Typer's type labels."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and not getattr(param, "is_flag", False) and not getattr(param, "count", False):
                param.metavar = _placeholder(param)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required or name.startswith("[") else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            name = _TYPE_LABEL.sub("", name)
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), _plain_help(text)))
            else:
                options.append((name, _plain_help(text)))
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)

    def get_short_help_str(self, limit: int = 45) -> str:
        return _summary(self.short_help or self.help)


class Group(TyperGroup):
    """A command group with the same help conventions, whose root turns usage errors into one line."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return _summary(self.short_help or self.help)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        Command.format_options(self, ctx, formatter)  # type: ignore[arg-type]
        self.format_commands(ctx, formatter)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # `analyzer` alone: its help (and 2, as Click has it)
            exc.show()
            result = exc.exit_code
        except click_errors.UsageError as exc:
            stderr.print(f"error: {usage_line(exc)}")
            result = ExitCode.USAGE
        except typer.Abort:
            result = ExitCode.INTERRUPTED
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else ExitCode.OK)


#: Typer's and Pydantic's wording, as one short phrase each.
_WORDING = (
    (re.compile(r"^Value error, "), ""),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (re.compile(r"Input should be a valid integer.*"), "not a whole number"),
    (re.compile(r"Input should be a valid number.*"), "not a number"),
    (re.compile(r"Input should be a valid boolean.*"), "not true or false"),
)


def usage_line(exc: Exception) -> str:
    """One line for a usage error: ``--workers: must be at least 1 (analyzer ingest -h)``."""
    ctx = getattr(exc, "ctx", None)
    where = f" ({ctx.command_path} -h)" if ctx is not None else ""
    if isinstance(exc, click_errors.MissingParameter):
        param = exc.param
        what = (param.opts[0] if param is not None and param.param_type_name == "option" and param.opts
                else (param.metavar or _placeholder(param)) if param is not None else "an argument")
        return visible(f"missing {what}{where}")
    if isinstance(exc, click_errors.BadParameter):
        hint = exc.param_hint if isinstance(exc.param_hint, str) else None
        if hint is None and exc.param is not None:
            hint = exc.param.opts[0] if exc.param.param_type_name == "option" and exc.param.opts else (
                exc.param.metavar or _placeholder(exc.param))
        text = exc.message
        for pattern, replacement in _WORDING:
            text = pattern.sub(replacement, text)
        text = re.sub(r"'([a-z0-9_-]+)'(?=[,.]| or)", r"\1", text) if "is not one of" in text else text
        label = (hint or "").strip("'")
        return visible(" ".join(f"{label}: {text.rstrip('.')}{where}".split()) if label else text)
    if isinstance(exc, click_errors.NoSuchOption):
        close = f" (did you mean {', '.join(sorted(exc.possibilities))}?)" if exc.possibilities else ""
        return visible(f"no such option {exc.option_name}{close}{where}")
    return visible(" ".join(str(getattr(exc, "message", exc)).split()) + where)


# -- the app -----------------------------------------------------------------------------------------------------------

app = typer.Typer(
    name="analyzer",
    cls=Group,
    help="CloudTrail analyzer: pull logs from S3, ingest them into Parquet, detect, report.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("analyzer")
        except PackageNotFoundError:  # pragma: no cover - a checkout that was never installed
            number = "unknown (not installed)"
        stdout.print(f"analyzer {number}")
        raise typer.Exit()


@app.callback()
def root(
    show_version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_version, help="Print the version and exit.")] = False,
) -> None:
    """CloudTrail analyzer: pull logs from S3, ingest them into Parquet, detect, report."""


DataOption = Annotated[
    Path,
    typer.Option("--data", "-d", metavar="DIR", help="Dataset directory (Hive-partitioned Parquet).",
                 envvar="ANALYZER_DATA"),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary (for cron).")]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="FILE",
        help="Configuration file (TOML; keys: docs/config.md). Default: $ANALYZER_CONFIG, ./analyzer.toml, "
        "~/.config/analyzer/config.toml.",
        dir_okay=False,
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Say which configuration file was loaded (or that none was).")
]


def fail(exc: BaseException, *, resumable: bool = False) -> typer.Exit:
    """Print what stopped a command as one line and return the exit to raise: the one mapping."""
    from analyzer.alerts.outputs import OutputError

    if isinstance(exc, KeyboardInterrupt):
        stderr.print("interrupted; rerun to resume" if resumable else "interrupted")
        return typer.Exit(ExitCode.INTERRUPTED)
    if isinstance(exc, UsageError | OutputError):
        option = exc.option
        stderr.print(f"error: {f'{option}: ' if option else ''}{visible(str(exc))}")
        return typer.Exit(ExitCode.USAGE)
    stderr.print(f"error: {visible(str(exc), keep_newlines=True)}")
    return typer.Exit(ExitCode.ERROR)


def guarded(func: F, *, resumable: bool = False) -> F:
    """``func`` with the one error mapping (:func:`fail`) around it."""

    @functools.wraps(func)
    def wrapper(*a: Any, **kw: Any) -> Any:
        from analyzer.alerts.outputs import OutputError

        try:
            return func(*a, **kw)
        except (AnalyzerError, OutputError, KeyboardInterrupt) as exc:
            raise fail(exc, resumable=resumable) from None

    return wrapper  # type: ignore[return-value]


def command(*args: Any, resumable: bool = False, typer_app: typer.Typer | None = None,
            **kwargs: Any) -> Callable[[F], F]:
    """``app.command`` with the one error mapping; ``resumable``: the command writes the dataset, and a
    rerun after Ctrl-C resumes it (so its message says so)."""

    def decorate(func: F) -> F:
        (typer_app or app).command(*args, cls=Command, **kwargs)(guarded(func, resumable=resumable))
        return func

    return decorate


def load_config(config: Path | None, verbose: bool) -> Config:
    """The checked configuration, loaded first by every command (a bad file stops it: exit 1);
    ``-v`` says which file it is."""
    from analyzer.config import load

    loaded = load(config)
    if verbose:
        stderr.print(visible(loaded.describe()))
    return loaded


def print_note(line: str | None, *, to_stderr: bool = False) -> None:
    """The summary line saying what the configuration file changed (see ``Config.note``)."""
    if line:
        (stderr if to_stderr else stdout).print(visible(line))


def config_strings(value: Any) -> list[str]:
    """A configuration value that may be one string or a list of them."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]
