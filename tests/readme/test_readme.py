"""README is executable: every ```console block runs on a fresh state directory and prints
what README shows (masked as tests/readme/transcripts.py says), or is skipped in README with
its reason; a README that drifts from what runs fails here."""

from __future__ import annotations

import re

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import SkipParser

from tests.readme.transcripts import ROOT, ConsoleParser, evaluate

README = ROOT / "README.md"
SYBIL = Sybil(parsers=[SkipParser(), ConsoleParser()])
DOCUMENT = SYBIL.parse(README)
EXAMPLES = list(DOCUMENT)
SKIP = re.compile(r"<!--\s*skip:\s*next\s*(?P<reason>.*?)\s*-->", re.DOTALL)
# the blocks README marks as not runnable here, each with its reason (Slack, a CML
# workspace, a benchmark…); one more is a decision to make here, not a silent one
SKIPPED = 6


def _runs(example: Example) -> bool:
    return example.region.evaluator is evaluate


def _id(example: Example) -> str:
    first = example.parsed[1].commands[0].split("\n")[0]
    return f"line{example.line}-" + re.sub(r"[^\w.@/-]+", "_", first)[:50].strip("_")


def _blocks() -> list[tuple[list[Example], Example]]:
    """Each console block with the Sybil directives just before it (a skip), so that a block
    picked alone (`-k`) is still skipped."""
    out: list[tuple[list[Example], Example]] = []
    directives: list[Example] = []
    for example in EXAMPLES:
        if _runs(example):
            out.append((directives, example))
            directives = []
        else:
            directives.append(example)
    return out


BLOCKS = _blocks()


@pytest.mark.parametrize(("directives", "block"), BLOCKS, ids=[_id(b) for _, b in BLOCKS])
def test_readme_block(directives: list[Example], block: Example) -> None:
    for directive in directives:
        directive.evaluate()
    block.evaluate()


def test_every_console_block_runs_or_says_why_not() -> None:
    text = README.read_text()
    blocks = len(re.findall(r"^[ \t]*```console$", text, re.MULTILINE))
    skips = [m.group("reason") for m in SKIP.finditer(text)]
    assert all(re.fullmatch(r'"[^"]{10,}"', r) for r in skips), (
        f"every skip says why, as a quoted reason: {skips}"
    )
    runs = [e for e in EXAMPLES if _runs(e)]
    assert len(runs) == blocks, "Sybil finds every console block README has"
    assert len(skips) == SKIPPED, "\n".join(["README skips these blocks:", *skips])
