"""`analyzer failures`: the objects that failed and are retried by every run, and giving up on them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from analyzer.cli.app import ConfigOption, DataOption, VerboseOption, command, load_config, stdout

DEFAULT_GIVE_UP_AGE = "7d"


def _when(epoch: float) -> str:
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%dT%H:%M:%SZ}"


@command("failures")
def failures_command(
    data: DataOption = Path("ctdata"),
    give_up: Annotated[bool, typer.Option(
        "--give-up", help="Stop retrying the failures first seen before --older-than (an object given up "
        "is read again only at a new version). Each one is listed.")] = False,
    older_than: Annotated[str | None, typer.Option(
        help="With --give-up: the age (e.g. 7d, 36h) or time a failure must be older than. Default: [failures] "
        f"give_up_after, else {DEFAULT_GIVE_UP_AGE}.")] = None,
    include_given_up: Annotated[bool, typer.Option("--all", help="Also list the failures given up on.")] = False,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List the objects whose latest attempt failed: every pull, nightly and ingest that covers them
    tries them again (and a pull's watermark waits for them) until they land or you give up.

    Example: analyzer failures --data ./ctdata --give-up --older-than 14d
    """
    from analyzer.sql import visible
    from analyzer.store import Dataset

    give_up_after = load_config(config, verbose).settings.failures.give_up_after
    with Dataset(data, create=False) as dataset:
        if give_up:
            now = datetime.now(UTC)
            if older_than is None and give_up_after is not None:
                cutoff: datetime | None = now - give_up_after
            else:
                from analyzer.window import parse_time

                cutoff = parse_time(older_than or DEFAULT_GIVE_UP_AGE, option="--older-than", now=now)
            assert cutoff is not None
            dataset.lock()
            given = dataset.manifest.give_up(failed_before=cutoff.timestamp())
            for failure in given:
                stdout.print(f"given up: {visible(failure.uri)} (failing since {_when(failure.first_failed_at)}, "
                             f"{failure.attempts} attempt(s)): {visible(failure.reason or '')}", markup=False)
            stdout.print(f"gave up on {len(given):,} failure(s) first seen before {cutoff:%Y-%m-%dT%H:%M:%SZ}",
                         markup=False)
            return
        failures = dataset.manifest.failures(given_up=None if include_given_up else False)
    for failure in failures:
        state = f"given up {_when(failure.given_up_at)}" if failure.given_up_at is not None else "retried"
        stdout.print(f"{visible(failure.uri)}  {state}  since {_when(failure.first_failed_at)}  "
                     f"{failure.attempts} attempt(s)  {visible(failure.reason or '')}", markup=False)
    stdout.print(f"{len(failures):,} failure(s)" + ("" if include_given_up else " being retried"), markup=False)
