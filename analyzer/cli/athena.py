"""`analyzer athena ddl` and `analyzer athena queries`: the catalogue, ready for Athena.

Thin commands over :mod:`analyzer.scale.athena`: the DDL is printed (run it once in Athena), the
queries are written one ``.sql`` file per detection. Athena itself is never called from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from analyzer.alerts.sanitize import visible
from analyzer.cli.app import ConfigOption, Group, VerboseOption, app, command, guarded, load_config, stderr, stdout
from analyzer.cli.extra import QueriesOption, SigmaOption, run_catalogue
from analyzer.files import write_text_atomic

athena_app = typer.Typer(
    name="athena",
    cls=Group,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Athena: the table, views and detections for a published dataset (`analyzer publish`).\n\n"
    "Example: analyzer athena ddl --location s3://my-lake/cloudtrail > athena.sql",
)
app.add_typer(athena_app)


@athena_app.callback(invoke_without_command=True)
@guarded
def athena_group(ctx: typer.Context, config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """The configuration is checked first, as for every command; without a subcommand, the help."""
    load_config(config, verbose)
    if ctx.invoked_subcommand is None:
        stdout.print(ctx.get_help(), markup=False)


@command("ddl", typer_app=athena_app)
def athena_ddl_command(
    location: Annotated[
        str, typer.Option("--location", metavar="s3://BUCKET/PREFIX", help="Where `analyzer publish` put the dataset.")
    ],
    database: Annotated[str, typer.Option(help="The Glue database the table and views go in.")] = "cloudtrail",
    table: Annotated[str, typer.Option(help="The table over the data files (the views read it).")] = "events_all",
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Print the Athena DDL for a published dataset: CREATE EXTERNAL TABLE, then the views.

    The table's columns are typed as the Parquet files are (userIdentity and tlsDetails structs,
    eventTime a timestamp, the JSON blobs strings), partitioned by event_date with partition
    projection (no crawler, no MSCK REPAIR TABLE). Then events_superseded (rewritten objects' old
    rows), the deduplicating events view and the staging views the detections read, in Trino SQL
    (Athena engine v3). Run the statements in order, one at a time.

    Example: analyzer athena ddl --location s3://my-lake/cloudtrail --database security > athena.sql
    """
    from analyzer.scale.athena import Names, ddl

    load_config(config, verbose)
    stdout.print(ddl(location, Names(database, table)), end="", markup=False, highlight=False, soft_wrap=True)


@command("queries", typer_app=athena_app)
def athena_queries_command(
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", file_okay=False, help="Write one <id>.sql per detection here (made if missing)."
        ),
    ] = Path("athena-queries"),
    only: Annotated[
        list[str] | None, typer.Option("--only", metavar="ID", help="Only this detection (repeatable).")
    ] = None,
    queries: QueriesOption = None,
    sigma: SigmaOption = None,
    config: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Write the detection catalogue as Athena SQL, one file per detection.

    Each file says its parameters in the order Athena takes them as execution parameters (the ?
    marks), with their defaults, then the query; run it in the database of `analyzer athena ddl`.
    A detection that cannot be transpiled is an error naming it and the construct at fault.

    Example: analyzer athena queries --output-dir ./athena   # then: aws athena start-query-execution
    --query-string file://athena/mfa-failure.sql --execution-parameters 60 ...
    """
    from analyzer.errors import AnalyzerError, UsageError
    from analyzer.scale.athena import queries as athena_queries
    from analyzer.scale.athena import query_file
    from analyzer.scale.dialects import check_catalogue

    settings = load_config(config, verbose)
    catalogue = run_catalogue(queries, sigma, quiet=True, config=settings).catalogue
    try:
        selected = catalogue.select(only)
    except AnalyzerError as exc:
        raise UsageError(str(exc), option="--only") from None
    check_catalogue(selected, ["athena"])  # every problem at once, before a file is written
    output_dir.mkdir(parents=True, exist_ok=True)
    for detection, query in zip(selected, athena_queries(selected), strict=True):
        write_text_atomic(output_dir / f"{detection.id}.sql", query_file(detection, query))
    stderr.print(visible(f"{len(selected)} detection(s) written to {output_dir}"))
