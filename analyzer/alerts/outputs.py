"""Where a report goes: which format a file name asks for, and one run writing several files.

``detect -o report.html`` must not write the terminal table into an HTML file: the suffix chooses
the format when ``--format`` is not given, and a suffix that names another format than the one
given (or no format at all, when it has to choose) is refused before any work is done.
``--output-dir`` writes one file per ``--format`` under fixed names (:data:`FILE_NAMES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.alerts.render import Format

if TYPE_CHECKING:
    from analyzer.alerts.summary import Report

#: File name endings and the format each one means (longest first: ``.ocsf.json`` before ``.json``).
SUFFIXES: dict[str, Format] = {
    ".ocsf.jsonl": Format.ocsf,
    ".ocsf.json": Format.ocsf,
    ".html": Format.html,
    ".htm": Format.html,
    ".json": Format.json,
    ".jsonl": Format.jsonl,
    ".ndjson": Format.jsonl,
    ".md": Format.markdown,
    ".markdown": Format.markdown,
    ".csv": Format.csv,
    ".txt": Format.table,
}
#: ``.txt`` is plain text: the table by default, and any format given with ``--format``.
NEUTRAL_SUFFIXES = frozenset({".txt"})

#: What ``--output-dir`` names each format's file.
FILE_NAMES: dict[Format, str] = {
    Format.html: "report.html",
    Format.json: "report.json",
    Format.markdown: "report.md",
    Format.table: "report.txt",
    Format.jsonl: "alerts.jsonl",
    Format.csv: "alerts.csv",
    Format.ocsf: "alerts.ocsf.jsonl",
}
#: What ``--output-dir`` writes when no ``--format`` is given.
DEFAULT_DIR_FORMATS = (Format.html, Format.json, Format.jsonl, Format.csv, Format.ocsf)
#: The formats that need the run's sign-ins (MFA coverage, the chart): the others list alerts only.
SIGNIN_FORMATS = frozenset({Format.table, Format.json, Format.markdown, Format.html})


class OutputError(ValueError):
    """A usage error in the output options; ``option`` is the one to blame (``--output``...)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Output:
    """One rendering of the report: its format, and its file (None: standard output)."""

    format: Format
    path: Path | None = None
    make_folder: bool = False  # the file is in an --output-dir, made if missing


def suffix_format(path: Path) -> tuple[str, Format | None]:
    """The suffix of ``path`` that names a format, and the format (``("", None)`` when none does)."""
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix, fmt
    return path.suffix.lower(), None


def format_for(path: Path, given: Format | None) -> Format:
    """The format to write ``path`` in: ``given``, checked against the suffix, else the suffix's."""
    suffix, implied = suffix_format(path)
    known = ", ".join(sorted(SUFFIXES))
    if given is None:
        if implied is None:
            what = f"suffix {suffix!r}" if suffix else "no suffix"
            raise OutputError("--output", f"{path}: {what} names no report format (known: {known}); "
                                          "give --format or one of those suffixes")
        return implied
    if implied is not None and implied is not given and suffix not in NEUTRAL_SUFFIXES:
        raise OutputError("--output", f"{path}: the suffix {suffix!r} means --format {implied.value}, "
                                      f"not {given.value}: change one of them")
    return given


def plan(formats: Sequence[Format] | None, output: Path | None, output_dir: Path | None) -> list[Output]:
    """The renderings one run makes, from ``--format`` (repeatable), ``--output`` and ``--output-dir``."""
    chosen = list(dict.fromkeys(formats or ()))  # a format given twice is written once
    if output is not None and output_dir is not None:
        raise OutputError("--output-dir", "give --output FILE or --output-dir DIR, not both")
    if output_dir is not None:
        return [Output(fmt, output_dir / FILE_NAMES[fmt], make_folder=True) for fmt in chosen or DEFAULT_DIR_FORMATS]
    if len(chosen) > 1:
        raise OutputError("--format", f"{len(chosen)} formats need --output-dir DIR (one file each); "
                                      "--output and standard output take one")
    given = chosen[0] if chosen else None
    if output is not None:
        return [Output(format_for(output, given), output)]
    return [Output(given or Format.table)]


def needs_signins(outputs: Sequence[Output]) -> bool:
    return any(o.format in SIGNIN_FORMATS for o in outputs)


def write(report: Report, outputs: Sequence[Output], *, width: int = 140, color: bool = False,
          alerts_only: bool = False, interactive: bool = False, screen_height: int = 0) -> None:
    """Render ``report`` once per output: files atomically (a folder given by ``--output-dir`` is
    made), standard output last. ``interactive`` (standard output is a terminal) pages a table
    longer than ``screen_height`` lines and escapes control characters in CSV."""
    import sys

    from analyzer.alerts.pager import page
    from analyzer.alerts.render import render
    from analyzer.files import write_text_atomic

    for out in sorted(outputs, key=lambda o: o.path is None):
        to_screen = out.path is None and interactive
        text = render(report, out.format, width=width if to_screen else 140, color=color and to_screen,
                      alerts_only=alerts_only, terminal=to_screen)
        if out.path is not None:
            write_text_atomic(out.path, text, make_parents=out.make_folder)
        elif to_screen and out.format is Format.table and text.count("\n") >= screen_height > 0 and page(text):
            continue
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
