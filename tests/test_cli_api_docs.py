"""docs/api.md is generated from the docstrings and current; it covers what the packages export; its
Python example runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import analyzer
import analyzer.jobs
from analyzer.cli.apidoc import SECTIONS, api_reference
from analyzer.cli.docs import main

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"


def test_the_api_page_is_current() -> None:
    assert API.read_text() == api_reference(), "run: python -m analyzer.cli.docs api > docs/api.md"


def test_the_generator_is_a_docs_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api"]) == 0 and capsys.readouterr().out == api_reference()


@pytest.mark.parametrize("package", [analyzer, analyzer.jobs])
def test_every_export_is_documented(package: object) -> None:
    documented = {(module, name) for module, names in SECTIONS for name in names}
    missing = [name for name in package.__all__ if (package.__name__, name) not in documented]  # type: ignore[attr-defined]
    allowed = {"AnalyzerError", "ExitCode", "IngestStats", "build_table", "decode_object"}  # documented elsewhere
    assert not [m for m in missing if m not in allowed], missing


def test_every_entry_has_a_docstring() -> None:
    assert "(undocumented)" not in api_reference()


def test_the_readme_links_the_api_page() -> None:
    assert "docs/api.md" in (ROOT / "README.md").read_text()


def test_the_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "AWSLogs").symlink_to(ROOT / "fixtures" / "AWSLogs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    [code] = re.findall(r"^```python\n(.*?)^```", API.read_text().split("\n## ", 1)[0], re.MULTILINE | re.DOTALL)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/api.md example", "exec"), {"__name__": "__api__"})
    assert "event records in the window" in printed.getvalue() and "detection_id" in printed.getvalue()
