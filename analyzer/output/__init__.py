"""Query results as files and text, next to the alert renderers (:mod:`analyzer.alerts`).

:mod:`analyzer.output.rows`: CSV, JSON, JSON Lines and Parquet writers over a query's Arrow batches,
and :func:`~analyzer.output.rows.emit`, which picks one and where it goes (atomically to a file);
:mod:`analyzer.output.table`: the terminal table, cut to the screen only at a terminal. ``analyzer
sql`` writes through them; so can a notebook::

    from analyzer.output import OutputFormat, emit
    from analyzer.sql import execute, open_readonly
    result = execute(open_readonly("ctdata"), "select * from signins")
    emit(result, OutputFormat.csv, Path("signins.csv"), None, Console())   # rich.console.Console
"""

from typing import TYPE_CHECKING

from analyzer._lazy import lazy_exports

if TYPE_CHECKING:
    from analyzer.output.rows import (
        OutputFormat,
        atomic_file,
        emit,
        output_format,
        write_csv,
        write_json,
        write_jsonl,
        write_parquet,
    )
    from analyzer.output.table import render_table
else:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "analyzer.output.rows": [
                "OutputFormat",
                "atomic_file",
                "emit",
                "output_format",
                "write_csv",
                "write_json",
                "write_jsonl",
                "write_parquet",
            ],
            "analyzer.output.table": ["render_table"],
        },
    )

__all__ = [
    "OutputFormat",
    "atomic_file",
    "emit",
    "output_format",
    "render_table",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_parquet",
]
