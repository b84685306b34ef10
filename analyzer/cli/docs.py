"""Documentation generated from the code, so it cannot go stale.

    python -m analyzer.cli.docs cli > docs/cli.md                 # the CLI reference, from --help
    python -m analyzer.cli.docs detections > docs/detections.md   # the catalogue, from its metadata
    python -m analyzer.cli.docs config > docs/config.md           # the configuration keys, from the schema
    python -m analyzer.cli.docs api > docs/api.md                 # the Python API, from the docstrings

``tests/test_cli_help.py`` (and ``tests/test_config_docs.py``) fail when a file differs from what this module
generates.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

from analyzer.detect import SEVERITY_MEANINGS, Catalogue, Detection, load_catalogue

WIDTH = 100  # help text is wrapped at this width, whatever the terminal, so the output is stable

CLI_HEADER = """# CLI reference

Generated from `--help` by `python -m analyzer.cli.docs cli > docs/cli.md`; do not edit by hand
(`tests/test_cli_help.py` fails when this file and the commands drift apart).
"""

CATALOGUE_HEADER = """# Detection catalogue

Generated from the metadata in `queries/*.toml` by
`python -m analyzer.cli.docs detections > docs/detections.md`; do not edit by hand
(`tests/test_cli_help.py` fails when this file and the catalogue drift apart). Run
`analyzer detections show ID` for a detection's SQL, and `analyzer detect --param ID.NAME=VALUE`
(or `[detect.params."ID"]` in the config file) to change a parameter.
"""


def _root() -> Any:
    import typer

    from analyzer.cli import app

    return typer.main.get_command(app)


def commands(root: Any = None) -> Iterator[tuple[str, Any, Any]]:
    """Every command and group (click objects, as Typer builds them), depth first, with a help context."""
    root = root or _root()
    settings = dict(root.context_settings)
    settings.update(terminal_width=WIDTH, max_content_width=WIDTH)

    def walk(command: Any, name: str, parent: Any) -> Iterator[tuple[str, Any, Any]]:
        ctx = command.context_class(command, info_name=name, parent=parent, **(settings if parent is None else {}))
        yield ctx.command_path, command, ctx
        if hasattr(command, "list_commands"):
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                if child is not None and not child.hidden:
                    yield from walk(child, sub, ctx)

    yield from walk(root, "analyzer", None)


def cli_reference() -> str:
    """The CLI reference (Markdown): every command's ``--help``, as a user would see it."""
    parts = [CLI_HEADER]
    for path, command, ctx in commands():
        parts.append(f"## `{path}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


def _cis(d: Detection) -> list[str]:
    return [f"{c.benchmark} v{c.version}, {c.control}: {c.title}" for c in d.cis]


def detection_dict(d: Detection) -> dict[str, Any]:
    """A detection's metadata as plain values (``analyzer detections --format json``)."""
    return {
        "id": d.id,
        "uuid": d.uuid,
        "title": d.title,
        "severity": d.severity,
        "status": d.status,
        "description": d.description,
        "blind_spots": list(d.blind_spots),
        "false_positives": list(d.false_positives),
        "attack": [{"technique": t.technique, "name": t.name, "tactics": list(t.tactics)} for t in d.attack],
        "cis": [{"benchmark": c.benchmark, "version": c.version, "control": c.control, "title": c.title}
                for c in d.cis],
        "params": {name: {"default": p.default, "description": p.description, "min": p.min, "max": p.max}
                   for name, p in d.params.items()},
        "summary_fields": list(d.summary_fields),
        "references": list(d.references),
        "cases": len(d.cases),
    }


def detection_text(d: Detection) -> str:
    """One detection for the terminal (``analyzer detections show ID``): metadata, then the SQL."""
    lines = [f"{d.id}: {d.title}", "", f"severity: {d.severity}    status: {d.status}    uuid: {d.uuid}", ""]
    lines += [d.description.strip(), ""]
    sections: list[tuple[str, list[str]]] = [
        ("ATT&CK", [f"{t.technique} {t.name} ({', '.join(t.tactics)})" for t in d.attack]),
        ("CIS", _cis(d) or ["none applies"]),
        ("Parameters", [f"{name} = {json.dumps(p.default)}: {p.description}" + _bounds(p.min, p.max)
                        for name, p in d.params.items()] or ["none"]),
        ("Blind spots", list(d.blind_spots)),
        ("False positives", list(d.false_positives)),
        ("Summary fields", list(d.summary_fields)),
        ("References", list(d.references)),
    ]
    for title, items in sections:
        if items:
            lines += [f"{title}:", *(f"  - {item}" for item in items), ""]
    lines += [f"SQL ({d.sql_path.name}):", "", d.sql.rstrip(), ""]
    if d.bound:  # a Sigma rule's values: bound as parameters, never part of the SQL text
        lines += ["Bound values:", *(f"  ${name} = {json.dumps(value)}" for name, value in d.bound.items()), ""]
    return "\n".join(lines)


def _bounds(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f" (range {'' if low is None else low}..{'' if high is None else high})"


def _md(text: str) -> str:
    """Metadata text in a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def catalogue_markdown(catalogue: Catalogue | None = None) -> str:
    """The catalogue page (Markdown): an index table, then one section per detection."""
    catalogue = catalogue if catalogue is not None else load_catalogue()
    out = [CATALOGUE_HEADER, "## Severities", ""]
    out += [f"- **{name}**: {meaning}" for name, meaning in SEVERITY_MEANINGS.items()]
    out += ["", "## Index", "", "| id | severity | title | ATT&CK | CIS |", "|---|---|---|---|---|"]
    for d in catalogue.values():
        cis = ", ".join(f"v{c.version} {c.control}" for c in d.cis) or "-"
        attack = ", ".join(t.technique for t in d.attack)
        out.append(f"| [`{d.id}`](#{d.id}) | {d.severity} | {_md(d.title)} | {attack} | {cis} |")
    for d in catalogue.values():
        out += ["", f"## {d.id}", "", f"**{_md(d.title)}**: severity `{d.severity}`, status `{d.status}`, "
                f"uuid `{d.uuid}`", "", " ".join(d.description.split()), ""]
        out += ["**ATT&CK**: " + "; ".join(f"{t.technique} {t.name} ({', '.join(t.tactics)})" for t in d.attack), ""]
        out += ["**CIS**: " + ("; ".join(_cis(d)) or "none applies"), ""]
        if d.params:
            out += ["| parameter | default | description |", "|---|---|---|"]
            out += [f"| `{name}` | `{json.dumps(p.default)}` | {_md(p.description)}{_bounds(p.min, p.max)} |"
                    for name, p in d.params.items()]
            out.append("")
        else:
            out += ["No parameters.", ""]
        for title, items in (("Blind spots", d.blind_spots), ("False positives", d.false_positives),
                             ("References", d.references)):
            if items:
                out += [f"**{title}**:", "", *(f"- {' '.join(item.split())}" for item in items), ""]
        out.append(f"Alert summary fields: {', '.join(f'`{f}`' for f in d.summary_fields)}. "
                   f"Cases: {len(d.cases)} in `queries/{d.meta_path.name}`.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m analyzer.cli.docs cli|detections|config|api``: print the page to standard output."""
    from analyzer.cli.apidoc import api_reference
    from analyzer.config_reference import config_reference

    args = sys.argv[1:] if argv is None else argv
    pages = {"cli": cli_reference, "detections": catalogue_markdown, "config": config_reference, "api": api_reference}
    if len(args) != 1 or args[0] not in pages:
        print("usage: python -m analyzer.cli.docs cli|detections|config|api", file=sys.stderr)
        return 2
    sys.stdout.write(pages[args[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
