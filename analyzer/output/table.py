"""Query results as a terminal table: one line per row, cut to the screen, with a note of what was left out."""

from __future__ import annotations

import shutil
from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.table import Table
from rich.text import Text

from analyzer.output.rows import rows_of, text_of

if TYPE_CHECKING:
    from rich.console import Console

    from analyzer.sql import Result

TABLE_OVERHEAD = 5  # header, rule, footer, the shell prompt and one spare line
MAX_COLUMN_WIDTH = 48
#: How the note under a cut table says to see everything: the command's flags, or the prompt's commands.
COMMAND_HINT = ("--max-rows 0, --format csv or --output FILE for all", "select fewer, or use --format")
PROMPT_HINT = (".maxrows 0 or .mode csv for all", "select fewer, or .mode csv")


def default_max_rows() -> int:
    """Rows that fit on the terminal with the table's header and footer (``LINES`` when piped)."""
    return max(1, shutil.get_terminal_size((100, 24)).lines - TABLE_OVERHEAD)


def _cell(value: Any) -> str:
    """A table cell: one line, control characters visible (``\\n``, ``\\x1b``), NULL spelled out."""
    from analyzer.sql import visible

    return visible(text_of(value, "NULL").replace("\n", "\\n"))


def _fitting_columns(names: list[str], rows: list[list[str]], width: int) -> int:
    """How many leading columns fit in ``width`` (at least one), like the DuckDB shell does."""
    used = 0
    for i, name in enumerate(names):
        wanted = min(max([len(name), *(len(r[i]) for r in rows)]), MAX_COLUMN_WIDTH)
        used += wanted + 3
        if used > width and i > 0:
            return i
    return len(names)


def render_table(
    result: Result, console: Console, max_rows: int | None = None, hint: tuple[str, str] = COMMAND_HINT
) -> int:
    """Print the rows as a table cut to ``max_rows`` (None: the terminal's height; 0: all), with a note of
    what was left out and how to see it (``hint``: how to get every row, every column)."""
    import pyarrow as pa

    from analyzer.sql import visible

    limit = default_max_rows() if max_rows is None else max_rows
    names = result.reader.schema.names
    if names == ["explain_key", "explain_value"]:  # EXPLAIN: DuckDB's plan drawing, as drawn
        for batch in result.batches():
            for value in batch.column(1).to_pylist():
                console.print(Text(str(value)))
        return 0
    rows: list[list[str]] = []
    total = 0
    for batch in result.batches():
        room = batch.num_rows if not limit else max(0, limit - len(rows))
        if room:
            rows += [[_cell(v) for v in row] for row in rows_of(batch.slice(0, room))]
        total += batch.num_rows
    if not names or (not total and not result.shows_rows):
        return total
    shown = _fitting_columns(names, rows, console.width) if console.is_terminal else len(names)  # a pipe: every one
    fields = list(result.reader.schema)[:shown]
    numeric = [
        pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type) for f in fields
    ]
    if console.is_terminal:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for field, right in zip(fields, numeric, strict=True):
            table.add_column(
                Text(visible(field.name)),
                no_wrap=True,
                overflow="ellipsis",
                max_width=MAX_COLUMN_WIDTH,
                justify="right" if right else "left",
            )
        for row in rows:
            table.add_row(*(Text(cell) for cell in row[:shown]))
        console.print(table)
    else:  # a pipe or a file: every row, as the terminal lays it out, without Rich's per-cell cost
        plain_table([visible(f.name) for f in fields], numeric, [row[:shown] for row in rows], console.file)
    note = f"{total:,} row{'s' if total != 1 else ''}"
    if total > len(rows):
        note += f" ({len(rows):,} shown, {total - len(rows):,} not shown: {hint[0]})"
    if shown < len(names):
        note += f"; {len(names)} columns ({shown} shown: {hint[1]})"
    if console.is_terminal:
        console.print(Text(note, style="dim"))
    else:
        console.file.write(note + "\n")
    return total


def _fit(cell: str, width: int, right: bool) -> str:
    size = cell_len(cell)
    if size > width:
        return set_cell_size(cell, width - 1) + "…"
    pad = " " * (width - size)
    return pad + cell if right else cell + pad


def plain_table(names: list[str], numeric: list[bool], rows: list[list[str]], out: IO[str]) -> None:
    """The terminal's layout (header, rule, one line per row, columns three spaces apart, long cells cut
    with "…") as plain text: 200k rows in seconds, where a Rich table takes a minute."""
    widths = [
        min(max([cell_len(name), *(cell_len(row[i]) for row in rows)]), MAX_COLUMN_WIDTH)
        for i, name in enumerate(names)
    ]
    out.write("   ".join(_fit(n, w, r) for n, w, r in zip(names, widths, numeric, strict=True)).rstrip() + "\n")
    out.write("─" * (sum(widths) + 3 * (len(widths) - 1)) + "\n")
    for row in rows:
        out.write("   ".join(_fit(c, w, r) for c, w, r in zip(row, widths, numeric, strict=True)).rstrip() + "\n")
