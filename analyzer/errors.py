"""The package's one exception type and the exit codes the CLI maps it to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes every command uses (documented in the README and in ``--help``)."""

    OK = 0
    ERROR = 1  # nothing useful could be done: bad configuration, unreadable dataset, fatal error
    USAGE = 2  # wrong flags or arguments (Typer's own convention)
    FINDINGS = 3  # detections found alerts at or above --fail-on (the prowler convention)
    PARTIAL = 4  # the run completed, but some objects failed or records were quarantined
    NO_DATA = 5  # the window holds no events: a wrong --data, an empty dataset, a window past the data's end
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell's convention)


class AnalyzerError(Exception):
    """An error the user can act on; the CLI prints its message (no traceback) and exits 1."""


class UsageError(AnalyzerError):
    """A wrong argument or option value: the CLI prints it as one line and exits 2.

    ``option`` names what is to blame (``--since``), so the library and the CLI word it alike.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option
