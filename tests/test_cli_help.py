"""Every command documents itself, and the generated docs match the code (sqlite-utils style)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.cli.docs import catalogue_markdown, cli_reference, commands, main

DOCS = Path(__file__).resolve().parent.parent / "docs"
COMMANDS = [(path, command) for path, command, _ in commands() if path != "analyzer"]


def test_every_command_has_help_with_an_example() -> None:
    missing = [path for path, command in COMMANDS if "Example" not in (command.help or "")]
    assert not missing, f"add an example ('Example: analyzer ...') to the docstring of: {', '.join(missing)}"


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{path} {param.name}"
        for path, command in COMMANDS
        for param in command.params
        if not (getattr(param, "help", None) or "").strip() and param.name not in ("help", "ctx")
    ]
    assert not missing, f"add help= to: {', '.join(missing)}"


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_help_runs(runner: CliRunner, path: str) -> None:
    result = runner.invoke(app, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_detect_help_documents_exit_codes(runner: CliRunner) -> None:
    output = " ".join(runner.invoke(app, ["detect", "--help"]).output.split())
    assert "0 no alert at or above --fail-on; 3 alerts at or above --fail-on" in output
    assert "1 error" in output and "2 usage error" in output


def test_cli_reference_is_current() -> None:
    expected = cli_reference()
    assert (DOCS / "cli.md").read_text() == expected, "run: python -m analyzer.cli.docs cli > docs/cli.md"


def test_detection_catalogue_page_is_current() -> None:
    expected = catalogue_markdown()
    assert (DOCS / "detections.md").read_text() == expected, (
        "run: python -m analyzer.cli.docs detections > docs/detections.md"
    )


def test_cli_reference_covers_every_command() -> None:
    text = cli_reference()
    assert all(f"## `{path}`" in text for path, _ in COMMANDS)


def test_docs_generator_rejects_unknown_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2 and "usage" in capsys.readouterr().err


def test_commands_walk_includes_subcommands() -> None:
    assert "analyzer detections show" in [path for path, _ in COMMANDS]
    assert all(callable(command.get_help) for _, command in COMMANDS)
