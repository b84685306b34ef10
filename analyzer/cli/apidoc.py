"""docs/api.md: the Python API, generated from the docstrings so that it cannot drift from the code.

    python -m analyzer.cli.docs api > docs/api.md

Each section is one module people import from (:data:`SECTIONS`): its docstring's first paragraph,
then every name it documents with its signature and docstring. ``tests/test_cli_api_docs.py`` fails
when the file and the code disagree, and when a name the packages export is missing from it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

#: (module, names) in the order a newcomer meets them: the stations' front doors, then the jobs.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("analyzer", ("connect", "ingest_objects", "rebuild_record", "Dataset", "SCHEMA")),
    (
        "analyzer.jobs",
        (
            "run_ingest",
            "run_pull",
            "run_detect",
            "run_nightly",
            "run_posture",
            "run_verify",
            "run_watch",
            "handle_s3_event",
            "s3_source",
            "trail_url",
            "DetectReport",
            "DataExtent",
            "PullResult",
            "NightlyResult",
            "NightlySettings",
            "PostureResult",
            "VerifyResult",
            "WatchSettings",
            "WatchStatus",
            "EventResult",
            "Progress",
        ),
    ),
    ("analyzer.detect", ("run_detections", "DetectionRun", "load_catalogue", "Catalogue", "Detection", "Allowlist")),
    ("analyzer.sql", ("open_readonly", "query_polars", "query_arrow", "timeline", "execute", "run", "QueryError")),
    ("analyzer.alerts", ("build_report", "render", "console_signins", "mfa_coverage", "signin_series", "Report")),
    (
        "analyzer.output",
        ("emit", "OutputFormat", "write_csv", "write_json", "write_jsonl", "write_parquet", "render_table"),
    ),
    ("analyzer.window", ("parse_window", "parse_time", "Window")),
    ("analyzer.sources.local", ("walk",)),
    ("analyzer.sources.s3", ("S3Source",)),
    ("analyzer.errors", ("AnalyzerError", "UsageError", "ExitCode")),
)

HEADER = """# Python API

Generated from the docstrings by `python -m analyzer.cli.docs api > docs/api.md`; do not edit by hand
(`tests/test_cli_api_docs.py` fails when this file and the code drift apart).

Everything the CLI does is a function here: each command parses its flags, calls one job of
`analyzer.jobs` and renders the result, so a notebook or a script gets exactly what the command does.
`notebooks/investigate.ipynb` is a worked example (the test suite runs it against the fixtures).
Scripts that ingest with worker processes (`workers=2` or more) must guard their entry point with
`if __name__ == "__main__":`, as with any library that starts processes.

```python
from analyzer.jobs import run_detect, run_ingest

run_ingest(["./AWSLogs"], "./ctdata")               # the fixtures of a checkout, or your own logs
result = run_detect("./ctdata", since="2026-11-20")  # time specs as on the command line, or datetimes
print(result.extent.describe(result.window))        # how many event records the window held
print(result.alerts.select("detection_id", "severity", "principal").head())
```
"""


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _markdown(text: str) -> str:
    """reST roles and literals as Markdown code: ``x`` and :func:`~a.b.x` both become `x`."""
    text = re.sub(r":[a-z]+:`(~?)([^`]+)`", _role, text)
    text = text.replace("``", "`")
    return re.sub(r"::\n", ":\n", text)


def _doc(obj: Any) -> str:
    return _markdown(inspect.getdoc(obj) or "(undocumented)")


class _Bare:
    """An annotation written as it is in the source (``Path | None``), not as a quoted string."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _bare(annotation: Any) -> Any:
    return _Bare(annotation) if isinstance(annotation, str) else annotation


def _signature(name: str, obj: Any, *, method: bool = False) -> str:
    """``name(a: int, *, b: str = 'x') -> T``, one parameter a line when it is long (a method: one line,
    without ``self``)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    parameters = list(signature.parameters.values())
    if method and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    signature = signature.replace(
        parameters=[p.replace(annotation=_bare(p.annotation)) for p in parameters],
        return_annotation=_bare(signature.return_annotation),
    )
    text = f"{name}{signature}"
    if len(text) <= 100 or method:
        return text
    params = [str(p) for p in signature.parameters.values()]
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.Parameter.KEYWORD_ONLY in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds:
        params.insert(kinds.index(inspect.Parameter.KEYWORD_ONLY), "*")
    returns = "" if signature.return_annotation is inspect.Signature.empty else f" -> {signature.return_annotation!r}"
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){returns}"


def _members(cls: type) -> list[tuple[str, Any]]:
    """A class's own public properties and methods (dataclass fields are in its signature)."""
    found = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property | staticmethod | classmethod) or inspect.isfunction(value):
            found.append((name, value))
    return found


def _entry(module: str, name: str) -> list[str]:
    obj = getattr(importlib.import_module(module), name)
    out = [f"### `{module}.{name}`", ""]
    if inspect.isclass(obj) and not issubclass(obj, BaseException) and not hasattr(obj, "__members__"):
        out += ["```python", _signature(f"class {name}", obj), "```", "", _doc(obj), ""]
        for member, value in _members(obj):
            target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            first = (inspect.getdoc(target) or "").split("\n\n", 1)[0]
            kind = "property" if isinstance(value, property) else "method"
            shown = member if kind == "property" else _signature(member, target, method=True)
            out.append(f"- `{shown}` ({kind}){': ' + _markdown(' '.join(first.split())) if first else ''}")
        if out[-1] != "":
            out.append("")
    elif inspect.isclass(obj):
        out += [_doc(obj), ""]
        members: dict[str, Any] = getattr(obj, "__members__", {})
        if members:
            out += [f"- `{key} = {member.value}`" for key, member in members.items()] + [""]
    elif callable(obj):
        out += ["```python", _signature(name, obj), "```", "", _doc(obj), ""]
    else:
        out += [f"A `{type(obj).__name__}`.", ""]
    return out


def api_reference() -> str:
    """docs/api.md (Markdown)."""
    out = [HEADER]
    for module, names in SECTIONS:
        doc = inspect.getdoc(importlib.import_module(module)) or ""
        out += [f"## `{module}`", "", _markdown(doc.split("\n\n", 1)[0]), ""]
        for name in names:
            out += _entry(module, name)
    return "\n".join(out).rstrip() + "\n"
