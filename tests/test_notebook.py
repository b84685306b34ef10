"""`notebooks/investigate.ipynb` runs headless against the fixtures dataset and shows what it promises."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "investigate.ipynb"


def cell(notebook: Any, tag: str) -> Any:
    found = [c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(found) == 1, f"one cell tagged {tag!r} expected"
    return found[0]


def shown(code_cell: Any) -> str:
    """Everything a code cell displayed, as text (plain and HTML)."""
    parts: list[str] = []
    for output in code_cell.outputs:
        assert output.output_type != "error", "".join(output.get("traceback", []))
        data = output.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/html", ""), output.get("text", "")]
    return "\n".join(parts)


def test_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for code_cell in (c for c in notebook.cells if c.cell_type == "code"):
        assert code_cell.outputs == [] and code_cell.execution_count is None, code_cell.source


def test_data_location_is_configurable() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert cell(notebook, "data").source == 'DATA = os.environ.get("ANALYZER_DATA", "../ctdata")'


@pytest.mark.slow
def test_runs_headless_on_the_fixtures(fixtures_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYZER_DATA", str(fixtures_dataset))
    # the kernel imports this checkout's analyzer, however (or whether) it is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    assert "events" in shown(cell(notebook, "load"))
    alerts = shown(cell(notebook, "alerts"))
    assert "shape: (0," not in alerts and "console-login" in alerts
    principal = _principal(shown(cell(notebook, "alert")))
    activity = shown(cell(notebook, "timeline"))
    assert principal in activity and "shape: (0," not in activity
    chart = shown(cell(notebook, "chart"))
    assert "<svg" in chart and "without MFA" in chart
    assert "principal" in shown(cell(notebook, "signins"))


def _principal(alert_repr: str) -> str:
    """The principal in the alert cell's dict repr: ``'principal': 'arn:…'``."""
    start = alert_repr.index("'principal': '") + len("'principal': '")
    return alert_repr[start : alert_repr.index("'", start)]
