"""The sandbox every query the tool runs on the user's behalf runs in.

Ad-hoc SQL (``analyzer sql``, notebooks), the detection catalogue (``detect``, ``nightly``),
user-supplied detections and detection cases all read the dataset through
:func:`analyzer.store.connect`, which ends with :func:`seal`. Log values are attacker-chosen and
detections may come from a user's ``--queries`` directory, so a query must not be able to reach
anything but the rows the views show. :func:`seal`:

1. *pins* every view that reads Parquet by path (``read_parquet('<glob>')``) to exactly the files
   the view reads when the connection is opened: DuckDB reads them natively
   (``allowed_paths``, nothing else, no directory), or, with ``arrow=True``, pyarrow reads them
   as Arrow datasets registered with the connection and the allow lists stay empty. In DuckDB
   2.0.1 an allowed path can be written as well as read (``COPY … TO '<file>' (USE_TMP_FILE
   false)`` overwrites it, ``ATTACH`` opens it), so a connection with allowed paths runs only
   statements :func:`check_statements` accepts (``analyzer sql`` uses ``arrow=True``: no file at
   all; detections are one ``SELECT``, which can write nothing). Arrow is ~7x slower for the
   catalogue (500k events: 1.0 s native, 7.0 s Arrow), hence native for detections;
2. turns the temporary directory off (``temp_directory = ''``): DuckDB auto-allows it for every
   file operation, and its default is ``.tmp`` under the current directory, so ``COPY … TO
   '.tmp/x'``, ``ATTACH '.tmp/x.duckdb'`` and ``EXPORT DATABASE '.tmp/x'`` would succeed;
3. switches extension auto-install/auto-load, community extensions and Python replacement scans
   (reading a Python variable by name) off, then DuckDB's file system (``enable_external_access =
   false``): no ``COPY``, ``ATTACH 'file'``, ``EXPORT``, ``read_text``/``read_csv``/``glob``,
   ``INSTALL``/``LOAD`` from disk, network or persistent secrets;
4. locks the configuration
   (``lock_configuration = true``): no statement can change any of it, nor the memory and thread
   caps :func:`~analyzer.store.connect` set;
5. reads the settings back (:func:`assert_sealed`) and raises :class:`SandboxError` if any differs
   from the intended value, so a DuckDB upgrade that changes a default fails loudly.

What stays possible is harmless: in-memory tables, views and macros of this connection. What the
sandbox cannot stop is a query using the CPU and memory it is given: :func:`time_limit` bounds its
time (``con.interrupt()`` from a timer), the memory cap its memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from analyzer.errors import AnalyzerError
from analyzer.schema import PARTITION_COLUMN, SCHEMA

#: Settings a sealed connection may still change: none reaches a file, a cap or another setting.
ALLOWED_CONFIGS = ("TimeZone", "Calendar", "default_order", "default_null_order", "preserve_insertion_order")

#: What :func:`assert_sealed` reads back with ``current_setting`` (``allowed_paths`` is checked apart).
EXPECTED: dict[str, object] = {
    "enable_external_access": False,
    "lock_configuration": True,
    "allowed_directories": [],
    "temp_directory": "",
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
    "allowed_configs": sorted(ALLOWED_CONFIGS),
}

#: Statement types a connection with allowed paths refuses: each can write or open a file.
WRITING_STATEMENTS = frozenset({
    duckdb.StatementType.COPY,
    duckdb.StatementType.COPY_DATABASE,
    duckdb.StatementType.EXPORT,
    duckdb.StatementType.ATTACH,
    duckdb.StatementType.DETACH,
    duckdb.StatementType.LOAD,
    duckdb.StatementType.EXTENSION,
    duckdb.StatementType.VACUUM,
    duckdb.StatementType.LOGICAL_PLAN,
    duckdb.StatementType.MULTI,
    duckdb.StatementType.INVALID,
})
# statements that run another one: EXPLAIN ANALYZE runs it, PREPARE keeps it for EXECUTE
_WRAPPER = re.compile(r"^\s*(?:explain\s+(?:\(\s*[^)]*\)\s*)?(?:analy[sz]e\s+)?|prepare\s+\S+\s+as\s+)", re.IGNORECASE)

_LOCKDOWN = (
    "set python_enable_replacements = false",
    "set autoinstall_known_extensions = false",
    "set autoload_known_extensions = false",
    "set allow_community_extensions = false",
    "set allow_persistent_secrets = false",
    "set temp_directory = ''",
    "set allowed_directories = []",
    "set enable_external_access = false",
    "set allowed_configs = [" + ", ".join(f"'{name}'" for name in ALLOWED_CONFIGS) + "]",
)

EVENTS_SCHEMA = SCHEMA.append(pa.field(PARTITION_COLUMN, pa.date32()))

_LITERAL = r"'(?:[^']|'')*'"
# read_parquet(<path> | list_value(<path>, …) | [<path>, …], (option = value), …) as DuckDB prints a view
_READ_PARQUET = re.compile(
    rf"\b(?:read_parquet|parquet_scan)\(\s*(?P<paths>{_LITERAL}|(?:main\.)?list_value\((?:\s*{_LITERAL}\s*,?)*\)"
    rf"|\[(?:\s*{_LITERAL}\s*,?)*\])(?P<options>(?:\s*,\s*\(\w+\s*=\s*\w+\))*)\)",
    re.IGNORECASE,
)
_FILE_READERS = re.compile(
    r"\b(read_parquet|parquet_scan|read_csv\w*|read_json\w*|read_ndjson\w*|read_text|read_blob|glob|"
    r"read_xlsx|sniff_csv|parquet_\w+)\s*\(|\bfrom\s+'",
    re.IGNORECASE,
)


class SandboxError(AnalyzerError):
    """The connection could not be sealed, or DuckDB does not hold the settings it was given."""


class QueryTimeout(AnalyzerError):
    """A query ran longer than its time limit and was interrupted."""


def _paths(literal_group: str) -> list[str]:
    return [m.group(0)[1:-1].replace("''", "'") for m in re.finditer(_LITERAL, literal_group)]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _files(paths: list[str]) -> list[str]:
    found = (f for path in paths for f in (glob(path, recursive=True) if re.search(r"[*?[]", path) else [path]))
    return sorted({os.path.abspath(f) for f in found})  # DuckDB keeps allowed paths absolute


def _hive(options: str) -> bool:
    return re.search(r"hive_partitioning\s*=\s*(true|1)", options, re.IGNORECASE) is not None


def _dataset(files: list[str], options: str, root: Path | None) -> pa.Table | ds.Dataset:
    if not _hive(options):
        return ds.dataset(files, format="parquet")
    partitioning = ds.partitioning(pa.schema([pa.field(PARTITION_COLUMN, pa.date32())]), flavor="hive")
    base = str(root) if root is not None else str(Path(files[0]).parent.parent)
    return ds.dataset(files, schema=EVENTS_SCHEMA, format="parquet", partitioning=partitioning, partition_base_dir=base)


def pin_files(con: duckdb.DuckDBPyConnection, root: Path | None = None, *, arrow: bool = False) -> list[str]:
    """Point every view that reads Parquet by path at exactly the files it reads now; return them.

    Natively (``read_parquet([file, …])``, the files to allow), or with ``arrow`` as Arrow datasets
    (nothing to allow). ``root`` is the dataset directory (the base of its Hive partitions); a view
    reading any other kind of file makes this raise, rather than fail later with a permission error.
    """
    registered: dict[tuple[str, ...], str] = {}
    allowed: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        options = match.group("options")
        files = _files(_paths(match.group("paths")))
        if not files and _hive(options):
            files_sql = "_sandbox_no_events"
            if files_sql not in registered.values():
                con.register(files_sql, EVENTS_SCHEMA.empty_table())
                registered[("",)] = files_sql
            return files_sql
        if not files:
            raise SandboxError(f"a view reads {match.group('paths')}, which matches no file")
        if not arrow:
            allowed.update(files)
            return f"read_parquet([{', '.join(map(_quote, files))}]{options})"
        key = (*files, options)
        if key not in registered:
            name = f"_sandbox_files_{len(registered)}"
            con.register(name, _dataset(files, options, root))
            registered[key] = name
        return registered[key]

    for _name, sql in con.execute("select view_name, sql from duckdb_views() where not internal").fetchall():
        pinned = _READ_PARQUET.sub(replace, sql)
        if pinned != sql:
            con.execute(re.sub(r"^\s*create\s+(temporary\s+)?view", r"create or replace \1view", pinned, count=1,
                               flags=re.IGNORECASE))
    for name, sql in con.execute("select view_name, sql from duckdb_views() where not internal").fetchall():
        if _FILE_READERS.search(_READ_PARQUET.sub("", sql)) if not arrow else _FILE_READERS.search(sql):
            raise SandboxError(f"view {name} reads files by path; it cannot run in the sandbox")
    return sorted(allowed)


def assert_sealed(con: duckdb.DuckDBPyConnection, allowed_paths: list[str] | None = None) -> None:
    """Raise :class:`SandboxError` unless DuckDB reports every sandbox setting as intended, and
    ``allowed_paths`` exactly as given."""
    expected = {**EXPECTED, "allowed_paths": sorted(allowed_paths or [])}
    wrong: dict[str, object] = {}
    for name, value in expected.items():
        try:
            got = con.execute("select current_setting($n)", {"n": name}).fetchall()
        except duckdb.Error:
            got = []
        actual = got[0][0] if got else None
        if isinstance(actual, list):
            actual = sorted(actual)
        if actual != value:
            wrong[name] = actual
    if wrong:
        detail = ", ".join(f"{name} = {value!r} (expected {expected[name]!r})" for name, value in wrong.items())
        raise SandboxError(f"the DuckDB sandbox is not in force: {detail}")


def allows_paths(con: duckdb.DuckDBPyConnection) -> bool:
    got = con.execute("select current_setting('allowed_paths')").fetchall()
    return bool(got and got[0][0])


def check_statements(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse SQL with a statement that could write or open a file (:data:`WRITING_STATEMENTS`),
    also inside ``EXPLAIN ANALYZE`` or ``PREPARE``. DuckDB's own parser names the types."""
    for statement in con.extract_statements(sql):
        query = statement.query
        kind = statement.type
        while kind in (duckdb.StatementType.EXPLAIN, duckdb.StatementType.PREPARE) and _WRAPPER.match(query):
            inner = con.extract_statements(_WRAPPER.sub("", query, count=1))
            if len(inner) != 1:
                break
            query, kind = inner[0].query, inner[0].type
        if kind in WRITING_STATEMENTS:
            raise SandboxError(f"Permission Error: {kind.name} statements are not allowed in the sandbox")


def seal(con: duckdb.DuckDBPyConnection, root: Path | None = None, *, arrow: bool = False) -> duckdb.DuckDBPyConnection:
    """Seal ``con`` for good (see the module docstring); ``root`` is the dataset directory, if any.

    Set the memory and thread caps before: the lock makes them permanent."""
    allowed = pin_files(con, root, arrow=arrow)
    with contextlib.suppress(duckdb.Error):  # Parquet footers kept in memory (the catalogue re-reads them)
        con.execute("set parquet_metadata_cache = true")
    try:
        con.execute(f"set allowed_paths = [{', '.join(map(_quote, allowed))}]")
        for statement in _LOCKDOWN:
            con.execute(statement)
        con.execute("set lock_configuration = true")
    except duckdb.Error as exc:
        raise SandboxError(f"cannot seal the DuckDB connection: {exc}") from exc
    assert_sealed(con, allowed)
    return con


@contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float | None) -> Iterator[None]:
    """Interrupt whatever ``con`` runs once ``seconds`` have passed; the query then fails with
    :class:`QueryTimeout` (None or 0: no limit).

    A timer thread calls ``con.interrupt()``; DuckDB checks for it between vectors, so a query
    stops within a fraction of a second of the limit.
    """
    if not seconds:
        yield
        return
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException as exc:
        raise QueryTimeout(_timeout_message(seconds)) from exc
    except AnalyzerError as exc:
        if fired.is_set() and "interrupt" in str(exc).lower():
            raise QueryTimeout(_timeout_message(seconds)) from exc
        raise
    finally:
        timer.cancel()


def _timeout_message(seconds: float) -> str:
    return f"query stopped: it ran longer than the time limit ({seconds:g} s; see --timeout)"
