"""docs/config.md is generated from the schema and current; its example and the README's are valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec

from analyzer.config import validate
from analyzer.config_reference import EXAMPLE, config_reference
from analyzer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_reference_is_current() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == config_reference(), (
        "run: python -m analyzer.cli.docs config > docs/config.md"
    )


def test_the_reference_names_every_table_and_key() -> None:
    text = config_reference()
    for table in msgspec.structs.fields(Settings):
        assert f"## `[{table.encode_name}]`" in text


def test_the_reference_example_is_valid() -> None:
    settings = validate(tomllib.loads(EXAMPLE))
    assert settings.notify.webhook is not None and settings.notify.webhook.url_env == "SLACK_WEBHOOK"


def test_every_toml_block_in_the_readme_is_a_valid_configuration() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]  # the README's sections live in docs/ now
    blocks = [b for page in pages for b in re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.DOTALL)]
    assert blocks
    for block in blocks:
        validate(tomllib.loads(block))


def test_the_readme_links_the_reference() -> None:
    assert "docs/config.md" in (ROOT / "README.md").read_text()
