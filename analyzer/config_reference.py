"""docs/config.md, generated from the schema (:mod:`analyzer.settings`) so that it cannot go stale.

    python -m analyzer.cli.docs config > docs/config.md

``tests/test_config_docs.py`` fails when the file and the schema drift apart, and checks that the
example below is a valid configuration.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import msgspec

from analyzer.config import DEFAULT_LOCATIONS, dotted
from analyzer.settings import Duration, EnvName, Growth, Seconds, Settings, Severity, Size, Table

HEADER = """# Configuration reference

Generated from the schema in `analyzer/settings.py` by `python -m analyzer.cli.docs config > docs/config.md`;
do not edit by hand (`tests/test_config_docs.py` fails when this file and the schema drift apart).

One TOML file, read by every command. Where it is looked for: `--config PATH` (every command takes it), else
`$ANALYZER_CONFIG`, else {locations}.
None is needed: without one, the built-in defaults apply. Run any command with `-v` to see which file was loaded
(or that none was) and which keys it sets; when a file changed a command's defaults, the command's summary says
so, e.g. `config ./analyzer.toml: 2 allowlist entries suppressed 19 alerts`.

- **Checked before anything runs.** An unknown table or key is an error naming the nearest valid one
  (`unknown key detect.fail_onn in analyzer.toml line 3; did you mean fail_on?`); a wrong type is one line
  naming the file, line and key (`bad value for pull.workers in analyzer.toml line 5: expected an integer, got a
  string`). Nothing is silently ignored.
- **Units are explicit.** Durations are written `"90d"`, `"2h"`, `"30m"`, `"45s"`, `"2w"`; sizes `"512MiB"`,
  `"2GiB"`. A bare number where a duration or size goes is an error (`retention = 90` would otherwise be 90
  seconds), except the webhook's `timeout` and `backoff`, documented in seconds from the start.
- **No secrets in the file.** Where a secret is needed the file names the environment variable that holds it
  (`url_env = "SLACK_WEBHOOK"`); AWS credentials come from a profile or the standard chain. A value that looks
  like a secret (a webhook URL, an access key id, a token, a URL with a password) is refused wherever it appears,
  and the error never shows it.
- **Flags win** over the file, the file over the built-in defaults.
"""

#: A complete example; the test checks it is valid.
EXAMPLE = """\
[pull]
bucket = "my-trail-bucket"
prefix = "org"
profile = "audit"
regions = ["eu-west-1", "us-east-1"]

[ingest]
max_object_size = "1GiB"

[detect]
fail_on = "high"
timeout = "10m"

[detect.params."console-brute-force"]
ip_threshold = 20

[allowlist]
principals = ["arn:aws:iam::111122223333:user/break-glass"]
ips = ["198.51.100.0/24"]
roles = ["arn:aws:iam::111122223333:role/SecurityAudit"]

[sql]
timeout = "5m"

[failures]
give_up_after = "14d"

[nightly]
report_dir = "/var/lib/analyzer/reports"
late_margin = "2h"
forget_alerts_after = "90d"   # alert state only: no data, no report is deleted
timeout = "30m"

[notify.sns]
topic_arn = "arn:aws:sns:eu-west-1:111122223333:cloudtrail-alerts"
min_severity = "medium"

[notify.webhook]
url_env = "SLACK_WEBHOOK"   # the variable's NAME; the URL itself never goes in this file
min_severity = "low"
timeout = "10s"
"""

#: What the tables of a table-of-tables key hold (their keys come from elsewhere than the schema).
TABLES_OF = {
    "params": "One table per detection id, `NAME = VALUE` for each of its parameters (names, types, bounds and "
    "defaults: `docs/detections.md`). An unknown detection or parameter is an error naming the nearest one; "
    "`--param ID.NAME=VALUE` wins.",
}

_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_CUSTOM = (Duration, Seconds, Size, Severity, EnvName, Growth)


def _split(annotation: Any) -> tuple[Any, list[msgspec.Meta]]:
    """The type under ``Annotated``/``| None``, and its metadata."""
    metas: list[msgspec.Meta] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            metas += [m for m in extra if isinstance(m, msgspec.Meta)]
        elif typing.get_origin(annotation) in (types.UnionType, typing.Union) and type(None) in typing.get_args(
                annotation):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
        else:
            return annotation, metas


def type_text(annotation: Any) -> str:
    """How a value of this schema type is written, for the reference."""
    core, metas = _split(annotation)
    bounds = "".join(f", {sign} {getattr(m, name)}" for m in metas
                     for name, sign in (("ge", "≥"), ("le", "≤")) if getattr(m, name) is not None)
    if core in _CUSTOM:
        return str(core.kind) + bounds
    if core in _TYPES:
        return _TYPES[core] + bounds
    origin = typing.get_origin(core)
    if origin is list:
        return f"list of {type_text(typing.get_args(core)[0])}s"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(type_text(a) for a in typing.get_args(core))
    if origin is dict:
        return "tables of NAME = value"
    raise TypeError(f"no description for {core!r}")


def _tables(cls: type[Table], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], type[Table]]]:
    found: list[tuple[tuple[str, ...], type[Table]]] = []
    for field in msgspec.structs.fields(cls):
        core, _ = _split(field.type)
        if isinstance(core, type) and issubclass(core, Table):
            found += [((*path, field.encode_name), core), *_tables(core, (*path, field.encode_name))]
    return found


def _default(text: str | None) -> str:
    """A default that is a TOML value in backticks; prose (``one per core``) as it is."""
    if not text:
        return ""
    try:
        tomllib.loads(f"x = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_reference() -> str:
    """The reference page (Markdown): every table, key, type and default, then the value types and an example."""
    locations = ", else ".join(f"`{'./' if path.parent == Path('.') else ''}{path}`" for path, _ in DEFAULT_LOCATIONS)
    out = [HEADER.format(locations=locations)]
    for path, cls in _tables(Settings, ()):
        rows = []
        for field in msgspec.structs.fields(cls):
            core, metas = _split(field.type)
            if isinstance(core, type) and issubclass(core, Table):
                continue
            description = " ".join(m.description for m in metas if m.description)
            default = next((m.extra["default"] for m in metas if m.extra and "default" in m.extra), None)
            rows.append(f"| `{field.encode_name}` | {_cell(type_text(field.type))} | {_cell(_default(default))} | "
                        f"{_cell(description)} |")
        out.append(f"## `[{dotted(path)}]`\n\n{' '.join((cls.__doc__ or '').split())}\n")
        if rows:
            out.append("| key | type | default | description |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
        for field in msgspec.structs.fields(cls):
            if typing.get_origin(_split(field.type)[0]) is dict:
                out.append(f'## `[{dotted((*path, field.encode_name))}."ID"]`\n\n{TABLES_OF[field.encode_name]}\n')
    out.append("## Value types\n\n| type | written as |\n|---|---|\n" + "\n".join(
        f"| {kind.kind} | {_cell(' '.join((kind.__doc__ or '').replace('``', '`').split()))} |" for kind in _CUSTOM)
               + "\n")
    out.append(f"## Example\n\n```toml\n{EXAMPLE}```\n")
    return "\n".join(out)
