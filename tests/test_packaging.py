"""A wheel built from this checkout carries every subpackage and the detection catalogue."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_subpackage() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "analyzer").rglob("__init__.py")}
    assert found | {"analyzer.queries"} == listed


@pytest.mark.slow
def test_the_wheel_carries_the_catalogue(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("analyzer", "queries"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True)
    (wheel,) = tmp_path.glob("analyzer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    queries = sorted(p.name for p in (ROOT / "queries").glob("*.sql"))
    assert queries and all(f"analyzer/queries/{name}" in names for name in queries)
    assert all(f"analyzer/queries/{Path(name).stem}.toml" in names for name in queries)
    assert "analyzer/store/compact.py" in names and "analyzer/cli/app.py" in names
    assert not [name for name in names if "synth" in name]  # the corpus generator is for tests and benchmarks


def test_the_package_does_not_carry_the_corpus_generator() -> None:
    assert not (ROOT / "analyzer" / "synth.py").exists()
    assert (ROOT / "synth" / "corpus.py").exists()
