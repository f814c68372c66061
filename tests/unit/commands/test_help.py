"""Every command explains itself with an example, and README documents it."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.registry import COMMANDS, describe
from core.marks import plain

README = (Path(__file__).parents[3] / "README.md").read_text()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_with_examples_that_parse(name: str) -> None:
    from commands.base import UsageError
    from commands.registry import parse, split

    module = COMMANDS[name]
    text = plain(describe(name))
    assert module.USAGE in text and "Examples:" in text
    assert module.EXAMPLES
    for example in module.EXAMPLES:
        assert example in text
        assert not isinstance(parse(*split(example)), UsageError), example


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"`/{COMMANDS[name].USAGE}`" in README


def test_help_lists_every_command() -> None:
    text = plain(describe())
    for module in COMMANDS.values():
        assert module.USAGE in text and module.SUMMARY in text
