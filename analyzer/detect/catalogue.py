"""The detection catalogue: ``queries/<id>.sql`` plus its sidecar ``queries/<id>.toml``.

Loading validates every detection's metadata and cases and raises one :class:`CatalogueError`
that lists *all* problems (file, field, what to fix), so a newcomer fixes a file in one pass.
Files whose name starts with ``_`` (the template) are skipped. The sidecar format is documented in
``queries/_template.toml``.

Users bring their own detections as folders of the same pairs (``analyzer detect --queries DIR``):
:func:`load_catalogue` loads them with the same validation, names each such file by its full path,
and refuses an id (or uuid) that two files define, naming both. Nothing a folder holds gets more
trust than the bundled catalogue: every query runs on the sealed connection
(:mod:`analyzer.store.sandbox`) and through its statement check.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from analyzer.detect.shape import ALERT_COLUMNS, SEVERITIES, STATUSES
from analyzer.errors import AnalyzerError
from analyzer.schema import is_json, leaf_paths

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PARAM_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
TECHNIQUE_PATTERN = re.compile(r"^T\d{4}(?:\.\d{3})?$")
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+$")
CONTROL_PATTERN = re.compile(r"^\d+(?:\.\d+)+$")
TACTICS = frozenset(
    {
        "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
        "privilege-escalation", "defense-evasion", "credential-access", "discovery", "lateral-movement",
        "collection", "command-and-control", "exfiltration", "impact",
    }
)
CIS_BENCHMARK = "CIS Amazon Web Services Foundations Benchmark"
#: The staging views a detection may read besides ``events`` (defined in :mod:`analyzer.store.views`, which
#: this module does not import: loading the catalogue must not load DuckDB; ``tests/test_views.py`` checks
#: the two lists agree).
STAGING_VIEWS: tuple[str, ...] = (
    "console_signins", "identity_center_signins", "identity_center_workflows", "identity_changes", "signins",
    "data_extent",
    "log_object_rewrites",
)
READS_EVENTS = re.compile(r"\bfrom\s+(?:events|" + "|".join(STAGING_VIEWS) + r")\b", re.IGNORECASE)
#: SQL that reads anything but the ``events`` view, or changes state (checked outside literals).
FORBIDDEN_SQL = re.compile(
    r"\b(read_\w+|parquet_scan|glob|attach|detach|copy|install|load|pragma|create|insert|update|delete|drop|"
    r"alter|export|import|call|set|reset)\b\s*[(\w]",
    re.IGNORECASE,
)
PARAM_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
LINE_COMMENT = re.compile(r"--[^\n]*")
BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
CASE_CHECKS = (
    "principal", "source_ip", "user_name", "severity", "count", "account_id", "region", "event_ids", "details",
)
NULLABLE_CHECKS = ("principal", "source_ip", "user_name", "account_id", "region")

KNOWN_KEYS = frozenset(
    {
        "id", "uuid", "title", "severity", "status", "description", "blind_spots", "false_positives",
        "references", "summary_fields", "lookback", "trigger", "attack", "cis", "params", "cases",
    }
)


class CatalogueError(AnalyzerError):
    """The catalogue has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the detection catalogue:\n{lines}")


@dataclass(frozen=True)
class Parameter:
    """A tunable value of a detection; its type is the type of its default."""

    name: str
    default: bool | int | float | str
    description: str
    min: int | float | None = None
    max: int | float | None = None

    @property
    def kind(self) -> type:
        return type(self.default)


@dataclass(frozen=True)
class Technique:
    technique: str
    name: str
    tactics: tuple[str, ...]


@dataclass(frozen=True)
class CisControl:
    version: str
    control: str
    title: str
    benchmark: str = CIS_BENCHMARK

    def __str__(self) -> str:
        return f"CIS AWS Foundations v{self.version} {self.control}"


@dataclass(frozen=True)
class Case:
    """One embedded test: records in, the number of alerts out, and what the alert must say.

    ``expect`` values for principal/source_ip/user_name/account_id/region are ``None`` when the
    sidecar wrote ``""`` (TOML has no null).
    """

    name: str
    records: list[dict[str, Any]]
    alerts: int
    expect: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    superseded: list[dict[str, Any]] = field(default_factory=list)  # an older version of the case's log object

    @property
    def positive(self) -> bool:
        return self.alerts > 0


@dataclass(frozen=True)
class Detection:
    """One detection: its SQL and its metadata."""

    id: str
    uuid: str
    title: str
    severity: str
    status: str
    description: str
    blind_spots: tuple[str, ...]
    false_positives: tuple[str, ...]
    references: tuple[str, ...]
    summary_fields: tuple[str, ...]
    attack: tuple[Technique, ...]
    cis: tuple[CisControl, ...]
    params: dict[str, Parameter]
    cases: tuple[Case, ...]
    sql: str
    sql_path: Path
    meta_path: Path
    lookback: str | None = None
    #: column path → values: the detection raises alerts only from events matching every entry
    #: (empty: from any event). A window, with its lookback, that holds none is not queried.
    trigger: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = "bundled"  # "bundled" (the package's queries/), "user" (a --queries folder), "sigma"
    bound: Mapping[str, Any] = field(default_factory=dict)  # fixed query values (a Sigma rule's), not tunable

    def param_names_in_sql(self) -> set[str]:
        return sql_parameters(self.sql) - set(self.bound)

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}


class Catalogue(Mapping[str, Detection]):
    """The loaded detections by id, in id order."""

    def __init__(self, detections: Iterable[Detection], directory: Path, extra: Iterable[Path] = ()) -> None:
        self._detections = {d.id: d for d in sorted(detections, key=lambda d: d.id)}
        self.directory = directory  # the bundled (or first) folder
        self.extra = tuple(extra)  # the folders users brought, in the order given

    def with_detections(self, detections: Iterable[Detection]) -> Catalogue:
        """This catalogue plus ``detections`` (Sigma rules, say); an id already present is an error."""
        added = list(detections)
        clashes = [d.id for d in added if d.id in self._detections]
        if clashes:
            raise CatalogueError([f"id {i!r} is defined twice" for i in clashes])
        return Catalogue([*self._detections.values(), *added], self.directory, self.extra)

    def __getitem__(self, key: str) -> Detection:
        return self._detections[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._detections)

    def __len__(self) -> int:
        return len(self._detections)

    def select(self, only: Iterable[str] | None = None) -> list[Detection]:
        """The detections named in ``only`` (all when None); an unknown id is an error."""
        if only is None:
            return list(self._detections.values())
        wanted = list(dict.fromkeys(only))
        unknown = [i for i in wanted if i not in self._detections]
        if unknown:
            raise AnalyzerError(
                f"unknown detection id(s): {', '.join(unknown)} (known: {', '.join(self._detections)})"
            )
        return [self._detections[i] for i in wanted]


def default_queries_dir() -> Path:
    """The catalogue: ``analyzer/queries`` in an installed wheel, else ``queries/`` of the checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "queries"
    return installed if installed.is_dir() else package.parent / "queries"


def sql_parameters(sql: str) -> set[str]:
    """The ``$name`` parameters a query uses (outside string literals and comments)."""
    return set(PARAM_REF.findall(code_only(sql)))


def code_only(sql: str) -> str:
    text = BLOCK_COMMENT.sub(" ", sql)
    text = LINE_COMMENT.sub(" ", text)
    return STRING_LITERAL.sub("''", text)


def load_catalogue(directory: Path | str | None = None, *, extra: Iterable[Path | str] = ()) -> Catalogue:
    """Load and validate every detection in ``directory`` (default: :func:`default_queries_dir`) and in
    each folder of ``extra`` (detections users bring); raise one :class:`CatalogueError` listing every
    problem, an id or uuid defined by two files among them."""
    root = Path(directory) if directory is not None else default_queries_dir()
    problems: list[str] = []
    detections = _load_folder(root, problems, origin="bundled" if directory is None else "user",
                              full_paths=directory is not None and bool(extra))
    folders = [Path(folder) for folder in extra]
    for folder in folders:
        detections += _load_folder(folder, problems, origin="user", full_paths=True)
    by_id: dict[str, Detection] = {}
    by_uuid: dict[str, Detection] = {}
    for d in detections:
        if (other := by_id.get(d.id)) is not None:
            problems.append(f"{d.meta_path}: id {d.id!r} is already defined by {other.meta_path}"
                            f"{' (a bundled detection)' if other.origin == 'bundled' else ''}; rename one")
            continue
        if (other := by_uuid.get(d.uuid)) is not None:
            problems.append(f"{_label(d)}: uuid {d.uuid} is also used by {other.id} ({_label(other)}; make a new one)")
        by_id[d.id] = d
        by_uuid.setdefault(d.uuid, d)
    if problems:
        raise CatalogueError(problems)
    return Catalogue(by_id.values(), root, folders)


def _label(d: Detection) -> str:
    return d.meta_path.name if d.origin == "bundled" else str(d.meta_path)


def _load_folder(root: Path, problems: list[str], *, origin: str, full_paths: bool) -> list[Detection]:
    """The detections of one folder (problems appended, named by file name or, for a user's, full path)."""
    if not root.is_dir():
        problems.append(f"{root}: detection folder not found")
        return []
    detections: list[Detection] = []
    name = (lambda p: str(p)) if full_paths else (lambda p: p.name)
    sql_files = {p.stem: p for p in root.glob("*.sql") if not p.name.startswith("_")}
    meta_files = {p.stem: p for p in root.glob("*.toml") if not p.name.startswith("_")}
    for stem in sorted(set(sql_files) - set(meta_files)):
        problems.append(f"{name(sql_files[stem])}: no metadata file {stem}.toml next to it")
    for stem in sorted(set(meta_files) - set(sql_files)):
        problems.append(f"{name(meta_files[stem])}: no query file {stem}.sql next to it")
    for stem in sorted(set(sql_files) & set(meta_files)):
        detection = _load_one(sql_files[stem], meta_files[stem], problems, where=name(meta_files[stem]))
        if detection is not None:
            detections.append(replace(detection, origin=origin))
    if not sql_files and not meta_files:
        problems.append(f"{root}: no detections found (expected <id>.sql with <id>.toml)")
    return detections


def _load_one(sql_path: Path, meta_path: Path, problems: list[str], *, where: str) -> Detection | None:
    start = len(problems)

    def problem(message: str) -> None:
        problems.append(f"{where}: {message}")

    try:
        meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        problem(f"not valid TOML: {exc}")
        return None
    sql = sql_path.read_text(encoding="utf-8")

    for key in sorted(set(meta) - KNOWN_KEYS):
        problem(f"unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})")

    def text(key: str) -> str:
        value = meta.get(key)
        if not isinstance(value, str) or not value.strip():
            problem(f"{key}: required, a non-empty string")
            return ""
        return value.strip()

    def texts(key: str, *, required: bool = True) -> tuple[str, ...]:
        value = meta.get(key, None if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            problem(f"{key}: required, a list of non-empty strings")
            return ()
        if required and not value:
            problem(f"{key}: must not be empty (write down at least one)")
        return tuple(v.strip() for v in value)

    det_id = text("id")
    if det_id and det_id != sql_path.stem:
        problem(f"id {det_id!r} must equal the file name {sql_path.stem!r}")
    if det_id and not ID_PATTERN.match(det_id):
        problem(f"id {det_id!r}: use lowercase words joined by '-'")
    det_uuid = text("uuid")
    if det_uuid:
        try:
            if str(uuidlib.UUID(det_uuid)) != det_uuid.lower():
                raise ValueError
        except ValueError:
            problem(f"uuid {det_uuid!r} is not a canonical UUID (python -c 'import uuid; print(uuid.uuid4())')")
    title = text("title")
    severity = text("severity")
    if severity and severity not in SEVERITIES:
        problem(f"severity {severity!r}: one of {', '.join(SEVERITIES)}")
    status = text("status")
    if status and status not in STATUSES:
        problem(f"status {status!r}: one of {', '.join(STATUSES)}")
    description = text("description")
    blind_spots = texts("blind_spots")
    false_positives = texts("false_positives")
    references = texts("references", required=False)
    summary_fields = texts("summary_fields")
    for name in summary_fields:
        if name not in ALERT_COLUMNS and not name.startswith("details."):
            problem(f"summary_fields: {name!r} is neither an alert column nor 'details.<key>'")

    attack = _attack(meta.get("attack"), problem)
    cis = _cis(meta.get("cis"), problem)
    params = _params(meta.get("params", {}), problem)

    used = sql_parameters(sql)
    for name in sorted(used - set(params)):
        problem(f"the SQL uses ${name} but [params.{name}] is not declared")
    for name in sorted(set(params) - used):
        problem(f"[params.{name}] is declared but the SQL never uses ${name}")
    code = code_only(sql)
    if match := FORBIDDEN_SQL.search(code):
        problem(f"{sql_path.name}: {match.group(1)!r} is not allowed: a detection only reads the events view")
    if ";" in code.strip().rstrip(";"):
        problem(f"{sql_path.name}: one statement only (found ';' inside the query)")
    if not READS_EVENTS.search(code):
        problem(
            f"{sql_path.name}: the query must read the events view ('from events') or a staging view "
            f"({', '.join(STAGING_VIEWS)})"
        )

    lookback = meta.get("lookback")
    if lookback is not None and (
        not isinstance(lookback, str) or lookback not in params or params[lookback].kind is not int
    ):
        problem("lookback: must name an integer parameter (minutes) declared in [params]")
        lookback = None

    trigger = _trigger(meta.get("trigger", {}), problem)
    cases = _cases(meta.get("cases"), params, problem)

    if len(problems) > start:
        return None
    return Detection(
        id=det_id,
        uuid=det_uuid.lower(),
        title=title,
        severity=severity,
        status=status,
        description=description,
        blind_spots=blind_spots,
        false_positives=false_positives,
        references=references,
        summary_fields=summary_fields,
        attack=attack,
        cis=cis,
        params=params,
        cases=cases,
        sql=sql,
        sql_path=sql_path,
        meta_path=meta_path,
        lookback=lookback,
        trigger=trigger,
    )


def _trigger(value: Any, problem: Any) -> dict[str, tuple[str, ...]]:
    """``[trigger]``: text columns of the schema (dotted paths) → the values that can raise an alert."""
    if not isinstance(value, dict):
        problem("trigger: a table of column = [values], e.g. eventName = [\"CreateAccessKey\"]")
        return {}
    columns = {path for path, f in leaf_paths() if pa.types.is_string(f.type) and not is_json(f)}
    trigger: dict[str, tuple[str, ...]] = {}
    for column, values in value.items():
        if column not in columns:
            problem(f"trigger: {column!r} is not a text column of the events (e.g. eventName, userIdentity.type)")
        elif not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            problem(f"trigger.{column}: a non-empty list of strings")
        else:
            trigger[column] = tuple(values)
    return trigger


def _attack(value: Any, problem: Any) -> tuple[Technique, ...]:
    if not isinstance(value, list) or not value:
        problem("attack: required, at least one [[attack]] table with technique, name, tactics")
        return ()
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problem(f"attack[{i}]: must be a table")
            continue
        technique, name, tactics = item.get("technique"), item.get("name"), item.get("tactics")
        if not isinstance(technique, str) or not TECHNIQUE_PATTERN.match(technique):
            problem(f"attack[{i}].technique {technique!r}: an ATT&CK id such as T1078 or T1078.004")
        if not isinstance(name, str) or not name.strip():
            problem(f"attack[{i}].name: required (the technique's ATT&CK name)")
        if not isinstance(tactics, list) or not tactics or not all(t in TACTICS for t in tactics):
            problem(f"attack[{i}].tactics {tactics!r}: a list from {', '.join(sorted(TACTICS))}")
        for key in sorted(set(item) - {"technique", "name", "tactics"}):
            problem(f"attack[{i}]: unknown key {key!r}")
        if isinstance(technique, str) and isinstance(name, str) and isinstance(tactics, list):
            out.append(Technique(technique, name, tuple(str(t) for t in tactics)))
    return tuple(out)


def _cis(value: Any, problem: Any) -> tuple[CisControl, ...]:
    if not isinstance(value, list):
        problem("cis: required, a list of [[cis]] tables (version, control, title); write cis = [] if none applies")
        return ()
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problem(f"cis[{i}]: must be a table")
            continue
        version, control, title = item.get("version"), item.get("control"), item.get("title")
        benchmark = item.get("benchmark", CIS_BENCHMARK)
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            problem(f"cis[{i}].version {version!r}: the benchmark version, e.g. '1.5.0'")
        if not isinstance(control, str) or not CONTROL_PATTERN.match(control):
            problem(f"cis[{i}].control {control!r}: the recommendation number as a string, e.g. '4.2'")
        if not isinstance(title, str) or not title.strip():
            problem(f"cis[{i}].title: required (the recommendation's title)")
        for key in sorted(set(item) - {"version", "control", "title", "benchmark"}):
            problem(f"cis[{i}]: unknown key {key!r}")
        if isinstance(version, str) and isinstance(control, str) and isinstance(title, str):
            out.append(CisControl(version, control, title, str(benchmark)))
    return tuple(out)


def _params(value: Any, problem: Any) -> dict[str, Parameter]:
    if not isinstance(value, dict):
        problem("params: must be a table of [params.<name>] tables")
        return {}
    out: dict[str, Parameter] = {}
    for name, spec in value.items():
        if not PARAM_PATTERN.match(name):
            problem(f"params.{name}: names are lowercase snake_case")
            continue
        if not isinstance(spec, dict):
            problem(f"params.{name}: must be a table with default and description")
            continue
        default, description = spec.get("default"), spec.get("description")
        low, high = spec.get("min"), spec.get("max")
        if not isinstance(default, bool | int | float | str):
            problem(f"params.{name}.default: required, a boolean, integer, float or string")
            continue
        if not isinstance(description, str) or not description.strip():
            problem(f"params.{name}.description: required, say what it changes")
            continue
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        for bound_name, bound in (("min", low), ("max", high)):
            if bound is not None and (not numeric or not isinstance(bound, int | float) or isinstance(bound, bool)):
                problem(f"params.{name}.{bound_name}: only numeric parameters have bounds, and they are numbers")
        for key in sorted(set(spec) - {"default", "description", "min", "max"}):
            problem(f"params.{name}: unknown key {key!r}")
        parameter = Parameter(name, default, description.strip(), low, high)
        try:
            check_bounds(parameter, default)
        except AnalyzerError as exc:
            problem(f"params.{name}.default: {exc}")
        out[name] = parameter
    return out


def check_bounds(parameter: Parameter, value: Any) -> None:
    """Raise when ``value`` lies outside the parameter's declared ``min``/``max``."""
    if parameter.min is not None and value < parameter.min:
        raise AnalyzerError(f"{parameter.name} = {value!r} is below its minimum {parameter.min}")
    if parameter.max is not None and value > parameter.max:
        raise AnalyzerError(f"{parameter.name} = {value!r} is above its maximum {parameter.max}")


def _cases(value: Any, params: dict[str, Parameter], problem: Any) -> tuple[Case, ...]:
    if not isinstance(value, list) or not value:
        problem("cases: required, [[cases]] tables (at least one positive and two near-miss negatives)")
        return ()
    out: list[Case] = []
    names: set[str] = set()
    for i, item in enumerate(value):
        label = f"cases[{i}]"
        if not isinstance(item, dict):
            problem(f"{label}: must be a table")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problem(f"{label}.name: required, say what the case shows")
            continue
        label = f"case {name!r}"
        if name in names:
            problem(f"{label}: duplicate case name")
        names.add(name)
        alerts = item.get("alerts")
        if not isinstance(alerts, int) or isinstance(alerts, bool) or alerts < 0:
            problem(f"{label}.alerts: required, the number of alerts expected (0 for a negative case)")
            continue
        expect = item.get("expect", {})
        if not isinstance(expect, dict):
            problem(f"{label}.expect: must be a table of alert fields")
            continue
        for key in sorted(set(expect) - set(CASE_CHECKS)):
            problem(f"{label}.expect: unknown key {key!r} (known: {', '.join(CASE_CHECKS)})")
        if alerts > 0:
            for required in ("principal", "source_ip"):
                if required not in expect:
                    problem(f"{label}: a positive case must check expect.{required} ('' for NULL)")
        elif expect:
            problem(f"{label}: a negative case (alerts = 0) has nothing to expect")
        case_params = item.get("params", {})
        if not isinstance(case_params, dict):
            problem(f"{label}.params: must be a table")
            case_params = {}
        for key in sorted(set(case_params) - set(params)):
            problem(f"{label}.params: {key!r} is not a parameter of this detection")
        try:
            records = case_records(item.get("records"))
        except (ValueError, TypeError, KeyError) as exc:
            problem(f"{label}.records: {exc} ({RECORDS_FORMS})")
            continue
        superseded: list[dict[str, Any]] = []
        if "superseded" in item:
            try:
                superseded = case_records(item["superseded"])
            except (ValueError, TypeError, KeyError) as exc:
                problem(f"{label}.superseded: {exc} ({RECORDS_FORMS})")
                continue
        for key in sorted(set(item) - {"name", "alerts", "expect", "params", "records", "note", "superseded"}):
            problem(f"{label}: unknown key {key!r}")
        normalised = {k: (None if k in NULLABLE_CHECKS and v == "" else v) for k, v in expect.items()}
        out.append(Case(name, records, alerts, normalised, dict(case_params), str(item.get("note", "")),
                        superseded))
    positives = sum(1 for c in out if c.positive)
    negatives = sum(1 for c in out if not c.positive)
    if positives < 1:
        problem("cases: at least one positive case (alerts >= 1) is required")
    if negatives < 2:
        problem("cases: at least two near-miss negative cases (alerts = 0) are required")
    return tuple(out)


RECORDS_FORMS = "[[cases.records]] tables, one per CloudTrail record, or a JSON array in a ''' string"


def case_records(raw: Any) -> list[dict[str, Any]]:
    """A case's records as written in the sidecar, in either form, ``_repeat`` expanded.

    The readable form is TOML: one ``[[cases.records]]`` table per record (nested fields as dotted
    keys or inline tables). TOML has no null, so ``_null = ["responseElements"]`` lists the fields
    whose value is JSON ``null`` (CloudTrail writes ``"responseElements": null``; a field left out is
    absent, which the dataset stores differently). The older form, a JSON array in a multi-line
    string, is still read. TOML datetimes (``eventTime = 2024-05-01T12:00:00Z``, unquoted) become
    CloudTrail's text form.
    """
    if isinstance(raw, str):
        return expand_records(json.loads(raw))
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise ValueError("required, one table per record")
    records = []
    for record in _plain(raw):
        nulls = record.pop("_null", [])
        if not isinstance(nulls, list) or not all(isinstance(n, str) and n for n in nulls):
            raise ValueError('"_null" lists the dotted paths of the fields that are null, e.g. ["responseElements"]')
        for path in nulls:
            _set_path(record, path, None)
        records.append(record)
    return expand_records(records)


def _plain(value: Any) -> Any:
    """TOML values as JSON ones: datetimes as CloudTrail writes them (UTC, ``Z``), dates and times as ISO text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        return value.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def expand_records(records: Any) -> list[dict[str, Any]]:
    """Records of a case, with ``"_repeat"`` shorthand expanded.

    ``"_repeat": {"count": 10, "every_seconds": 60, "vary": {"userIdentity.userName": "user{i}"}}``
    stands for ``count`` copies of the record, the i-th one ``i * every_seconds`` later, with
    ``eventID`` suffixed ``-i`` and each ``vary`` path set to its template with ``{i}`` filled in.
    """
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("records must be an array of JSON objects")
    out: list[dict[str, Any]] = []
    for record in records:
        spec = record.get("_repeat")
        if spec is None:
            out.append(record)
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("count"), int) or spec["count"] < 1:
            raise ValueError('"_repeat" needs {"count": N >= 1, "every_seconds": S, "vary": {...}}')
        base = {k: v for k, v in record.items() if k != "_repeat"}
        start = datetime.strptime(base["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        step = float(spec.get("every_seconds", 0))
        vary = spec.get("vary", {})
        for i in range(spec["count"]):
            item = copy.deepcopy(base)
            item["eventTime"] = (start + timedelta(seconds=i * step)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if "eventID" in item and item["eventID"] is not None:
                item["eventID"] = f"{item['eventID']}-{i}"
            for path, template in vary.items():
                _set_path(item, path, str(template).replace("{i}", str(i)))
            out.append(item)
    return out


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = record
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
