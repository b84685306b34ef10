"""`analyzer detections test [DIR]` and `analyzer detections new ID`: rules users bring.

A user writes a detection as the catalogue's are written (``<id>.sql`` + ``<id>.toml`` with its
cases), without a development checkout: ``new`` scaffolds the pair from the template, ``test``
runs every case through the ingest path and the engine (as the project's own test suite does) and
shows what differs, and ``detect --queries DIR`` runs them beside the bundled catalogue.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import ConfigOption, VerboseOption, command, load_config, stdout
from analyzer.cli.detect import detections_app
from analyzer.errors import AnalyzerError, ExitCode

if TYPE_CHECKING:
    from analyzer.detect import Catalogue, Detection

# --- analyzer detections test [DIR] --------------------------------------------------------------------------


@command("test", typer_app=detections_app)
def detections_test_command(
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIR]",
            file_okay=False,
            help="A folder of detections (<id>.sql + <id>.toml). Default: the bundled catalogue.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", metavar="ID", help="Test only this detection (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print failures and the summary only.")] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run every case of every detection (the [[cases]] in its .toml) and say which pass.

    Each case's records go through the ingest path into a dataset of their own, the detection runs on
    it as `detect` runs it (on the sealed connection), and its alerts are compared with what the case
    expects; a failing case prints a diff (- expected, + actual). The SQL is checked too (binding,
    columns, the selective first step). Exit 0 when everything passes, 1 otherwise.

    Example: analyzer detections test ./my-detections
    """
    from analyzer.detect import CatalogueError, default_queries_dir, load_catalogue
    from analyzer.detect.lint import lint_catalogue

    load_config(config, verbose)
    if directory is not None and directory.resolve() == default_queries_dir().resolve():
        directory = None  # the bundled catalogue itself (a checkout's queries/)
    try:
        # a user's folder loads beside the bundled catalogue, so an id they share is reported too
        catalogue = load_catalogue(extra=[directory] if directory is not None else [])
    except CatalogueError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(ExitCode.ERROR) from None
    origin = "bundled" if directory is None else "user"
    chosen = [d for d in catalogue.values() if d.origin == origin]
    if only:
        known = {d.id for d in chosen}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise typer.BadParameter(
                f"unknown detection id(s): {', '.join(unknown)} (known: {', '.join(known)})", param_hint="'--only'"
            )
        chosen = [d for d in chosen if d.id in only]
    lint = lint_catalogue(catalogue, chosen)
    passed, failed = _run_cases(catalogue, chosen, quiet=quiet)
    _print_problems(lint)
    total = passed + failed
    summary = f"{len(chosen)} detection(s), {total} case(s): {passed} passed, {failed} failed" + (
        f"; {len(lint)} SQL problem(s)" if lint else ""
    )
    stdout.print(summary, markup=False, highlight=False)
    raise typer.Exit(ExitCode.ERROR if failed or lint else ExitCode.OK)


def _run_cases(catalogue: Catalogue, chosen: list[Detection], *, quiet: bool) -> tuple[int, int]:
    from analyzer.detect import case_problems, run_case
    from analyzer.detect.cases import case_diff

    passed = failed = 0
    for detection in chosen:
        for case in detection.cases:
            label = visible(f"{detection.id}: {case.name}")
            try:
                alerts = run_case(catalogue, detection, case).alerts
            except (AnalyzerError, ValueError) as exc:
                failed += 1
                stdout.print(f"FAIL {label}\n  {visible(str(exc))}", markup=False, highlight=False)
                continue
            problems = case_problems(case, alerts)
            if not problems:
                passed += 1
                if not quiet:
                    stdout.print(f"PASS {label}", markup=False, highlight=False)
                continue
            failed += 1
            lines = [
                f"FAIL {label}",
                *(f"  {visible(p)}" for p in problems),
                *(f"  {visible(line)}" for line in case_diff(case, alerts)),
            ]
            stdout.print("\n".join(lines), markup=False, highlight=False)
    return passed, failed


def _print_problems(problems: list[str]) -> None:
    for problem in problems:
        stdout.print(f"FAIL {visible(problem)}", markup=False, highlight=False)


# --- analyzer detections new ID ------------------------------------------------------------------------------

TEMPLATE_ID = "template-example"


@command("new", typer_app=detections_app)
def detections_new_command(
    detection_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="The new detection's id: lowercase words joined by '-' (it names the files)."
        ),
    ],
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            metavar="DIR",
            file_okay=False,
            help="Where to write ID.sql and ID.toml (made if missing). Default: the current folder.",
        ),
    ] = Path(),
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Write ID.sql and ID.toml from the catalogue's template: a working detection with its cases.

    The template (an access key created for another user) passes `analyzer detections test DIR` as
    written; change its SQL, metadata and cases into yours, test, then run it with
    `analyzer detect --queries DIR`. Existing files are never overwritten.

    Example: analyzer detections new bucket-made-public --dir ./my-detections
    """
    from analyzer.detect import default_queries_dir, load_catalogue
    from analyzer.detect.catalogue import ID_PATTERN
    from analyzer.files import write_text_atomic

    load_config(config, verbose)
    if not ID_PATTERN.match(detection_id):
        raise typer.BadParameter(
            f"{detection_id!r}: use lowercase words joined by '-' (e.g. bucket-made-public)", param_hint="'ID'"
        )
    bundled = load_catalogue()
    if detection_id in bundled:
        raise AnalyzerError(
            f"{detection_id!r} is a bundled detection ({bundled[detection_id].meta_path}): choose another id"
        )
    targets = {suffix: directory / f"{detection_id}{suffix}" for suffix in (".sql", ".toml")}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing:
        raise AnalyzerError(f"{', '.join(existing)}: already exists (not overwritten)")
    source = default_queries_dir()
    sql = (source / "_template.sql").read_text(encoding="utf-8").replace(TEMPLATE_ID, detection_id)
    meta = (source / "_template.toml").read_text(encoding="utf-8")
    template_uuid = _template_uuid(meta)
    meta = meta.replace(TEMPLATE_ID, detection_id).replace(template_uuid, str(uuid.uuid4()))
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomic(targets[".toml"], meta)
    write_text_atomic(targets[".sql"], sql)
    sys.stdout.write(
        f"wrote {visible(str(targets['.sql']))} and {visible(str(targets['.toml']))}\n"
        f"next: edit them, then `analyzer detections test {visible(str(directory))}`, "
        f"then `analyzer detect --queries {visible(str(directory))}`\n"
    )


def _template_uuid(meta: str) -> str:
    import tomllib

    value = tomllib.loads(meta).get("uuid")
    if not isinstance(value, str):
        raise AnalyzerError("the template has no uuid")  # pragma: no cover - the template is part of the package
    return value
