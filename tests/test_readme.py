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


#: The README and the pages its sections moved to (docs/api.md's example: tests/test_cli_api_docs.py).
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "api.md")]
BLOCKS = [(page, index) for page in PAGES for index in range(len(python_blocks(page)))]


@pytest.mark.parametrize(("page", "index"), BLOCKS, ids=[f"{p.name}-{i + 1}" for p, i in BLOCKS])
def test_readme_python_block_runs(page: Path, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block runs in a fresh directory holding the bundled fixtures as ./AWSLogs, as a user's would."""
    (tmp_path / "AWSLogs").symlink_to(ROOT / "fixtures" / "AWSLogs", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    code = python_blocks(page)[index]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{page.name} python block {index + 1}", "exec"), {"__name__": "__readme__"})
    assert printed.getvalue().strip() or os.listdir(tmp_path) != ["AWSLogs"], "the block did nothing visible"
