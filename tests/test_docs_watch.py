"""docs/watch.md cannot drift from the code: its JSON is JSON, the watch options and [watch] keys it names
exist, and the watch role's SQS permissions are the ones the command says it needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.settings import WatchTable

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "watch.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def blocks(language: str | None = None, page: Path = PAGE) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if language is None or lang == language]


def prose(page: Path = PAGE) -> str:
    """The page without its fenced blocks."""
    return FENCE.sub("", page.read_text())


@pytest.fixture(scope="module")
def watch_help() -> str:
    result = CliRunner().invoke(app, ["watch", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def help_options(text: str) -> set[str]:
    """The options ``--help`` lists (the first column of its Options section)."""
    section = text.split("Options:", 1)[1]
    return {
        o
        for line in section.splitlines()
        if line.lstrip().startswith("-")
        for o in OPTION.findall(line.strip().split("  ", 1)[0])
    }


def mentioned_options(page: Path = PAGE, *, alone: bool = True) -> set[str]:
    """``--x`` in a command line that runs ``analyzer watch`` (code blocks, inline code), and inline code that
    is an option alone (`--once`, `--wait-time 2`); other tools' options (`aws ... --source-arn`) are not ours."""
    found: set[str] = set()
    lines = [line for body in blocks(page=page) for line in body.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", prose(page))
    for text in [*lines, *spans]:
        command = text.split("#", 1)[0]
        if "analyzer watch" in command:
            found.update(OPTION.findall(command.split("analyzer watch", 1)[1]))
    if alone:  # on the watch page, `--x` alone is a watch option; elsewhere it may be any command's
        found.update(span.split()[0] for span in spans if span.startswith("--"))
    return found


def test_the_page_has_the_wiring_blocks() -> None:
    languages = [lang for lang, _ in FENCE.findall(PAGE.read_text())]
    assert languages.count("json") >= 8 and "ini" in languages and "sh" in languages and "toml" in languages
    assert "python" not in languages, "```python blocks run in tests/test_readme.py: use ```py for a handler"


@pytest.mark.parametrize("index", range(len(blocks("json"))))
def test_every_json_block_parses(index: int) -> None:
    json.loads(blocks("json")[index])


def test_every_watch_option_the_page_names_exists(watch_help: str) -> None:
    named = mentioned_options()
    known = help_options(watch_help)
    assert {"--queue-url", "--once", "--wait-time", "--visibility-timeout"} <= named  # the parser finds them
    assert not named - known, f"docs/watch.md names options analyzer watch does not have: {sorted(named - known)}"
    in_readme = mentioned_options(ROOT / "README.md", alone=False)
    assert "--queue-url" in in_readme and not in_readme - known, sorted(in_readme - known)


def test_every_watch_key_the_page_names_exists() -> None:
    keys = {f.encode_name for f in msgspec.structs.fields(WatchTable)}
    spans = re.findall(r"`([^`\n]+)`", prose())  # `[watch] retry_after`, `[watch] workers` > 1
    named = {m for span in spans for m in re.findall(r"\[watch\] ([a-z_]+)", span)}
    named |= {k for body in blocks("toml") for k in _table_keys(body, "watch")}
    assert named, "the page names no [watch] key"
    assert not named - keys, f"not [watch] keys: {sorted(named - keys)}"


def _table_keys(toml: str, table: str) -> list[str]:
    import tomllib

    return list(tomllib.loads(toml).get(table, {}))


def test_the_watch_role_has_the_sqs_permissions_the_command_names(watch_help: str) -> None:
    needed = set(re.findall(r"sqs:[A-Za-z]+", " ".join(watch_help.split())))
    granted: set[str] = set()
    for body in blocks("json"):
        document = json.loads(body)
        for statement in document.get("Statement", []) if isinstance(document, dict) else []:
            if statement.get("Principal") is None:  # an identity policy (the watch role), not a resource policy
                actions = statement.get("Action")
                granted.update([actions] if isinstance(actions, str) else actions or [])
    assert needed and needed <= granted, f"the watch role lacks {sorted(needed - granted)}"
    assert "s3:GetObject" in granted and "s3:GetObject" in watch_help
    assert {a for a in granted if a.startswith("sqs:")} == needed, "the page grants SQS actions watch does not use"


def test_the_readme_links_every_page_in_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{p.name}" not in readme]
    assert not unlinked, f"the README's Documentation list misses: {unlinked}"


def test_the_readme_says_what_verification_proves_and_needs() -> None:
    section = (ROOT / "README.md").read_text().split("## Log integrity", 1)[1].split("\n## ", 1)[0]
    for needed in ("proves", "cannot", "s3:GetObject", "s3:ListBucket", "cloudtrail:ListPublicKeys", "docs/verify.md"):
        assert needed in section, needed
