"""The ``--queries`` and ``--sigma`` options of `detect` and `nightly`: detections users bring.

Kept apart from the commands so both can import them (and start-up stays light: nothing heavy is
imported until a command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import stderr

#: How analyzer.sigma.rules words a rule of another log source (not imported here: pySigma is optional).
NOT_CLOUDTRAIL = "not a CloudTrail rule"

if TYPE_CHECKING:
    from analyzer.config import Config
    from analyzer.detect.extra import RunCatalogue

QueriesOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--queries",
        metavar="DIR",
        file_okay=False,
        help="Also run the detections in this folder (<id>.sql + <id>.toml pairs, as `analyzer detections "
        "new` makes them; repeatable). Same checks as the bundled ones; an id they share is an error.",
    ),
]
SigmaOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--sigma",
        metavar="DIR",
        help="Also run the Sigma rules (logsource aws/cloudtrail) in this folder or file (repeatable); "
        "their alerts are sigma:<rule id>. Needs the analyzer[sigma] extra.",
    ),
]


def run_catalogue(
    queries: list[Path] | None, sigma: list[Path] | None, *, quiet: bool = False, config: Config | None = None
) -> RunCatalogue:
    """The bundled catalogue plus what ``--queries``/``--sigma`` bring (else ``[detect] queries``/``sigma``
    of the configuration file, relative to it); skipped Sigma rules said on stderr."""
    from analyzer.detect.extra import load_run_catalogue

    queries = queries or _configured(config, "queries")
    sigma = sigma or _configured(config, "sigma")
    loaded = load_run_catalogue(queries, sigma)
    if not quiet:
        other_sources = [path for path, reason in loaded.sigma_skipped if reason.startswith(NOT_CLOUDTRAIL)]
        for path, reason in loaded.sigma_skipped:
            if not reason.startswith(NOT_CLOUDTRAIL):
                stderr.print(visible(f"sigma: skipped {path}: {reason}"), markup=False)
        if other_sources:  # a whole Sigma checkout holds thousands: one line, not one each
            stderr.print(
                f"sigma: skipped {len(other_sources)} rule(s) whose log source is not aws/cloudtrail", markup=False
            )
        if sigma:
            stderr.print(
                f"sigma: {loaded.sigma_detections} rule(s) converted, {len(loaded.sigma_skipped)} skipped", markup=False
            )
    return loaded


def _configured(config: Config | None, name: str) -> list[Path]:
    """``[detect] <name>`` as paths, relative ones taken from the configuration file's folder."""
    if config is None:
        return []
    values = getattr(config.settings.detect, name) or []
    base = config.path.expanduser().parent if config.path is not None else Path()
    return [base / Path(value).expanduser() for value in values]
