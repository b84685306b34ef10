"""The README's Python blocks run as written (a wrong example is the first thing a newcomer copies).

Blocks fenced ```` ```python ```` run here; ```` ```py ```` marks reference one-liners that need a dataset
and other tools (the read recipes: tests/test_read_recipes.py runs each of them).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples() -> None:
    assert python_blocks(ROOT / "README.md"), "the README lost its Python example"


@pytest.mark.parametrize("index", range(len(python_blocks(ROOT / "README.md"))))
def test_readme_python_block_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block runs in a fresh directory holding the bundled fixtures as ./AWSLogs, as a user's would."""
    (tmp_path / "AWSLogs").symlink_to(ROOT / "fixtures" / "AWSLogs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    code = python_blocks(ROOT / "README.md")[index]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    assert printed.getvalue().strip() or os.listdir(tmp_path) != ["AWSLogs"], "the block did nothing visible"
