"""README's ```console blocks for Sybil: each is a shell session (`$ command`, then what it
prints) run by bash on a fresh state directory, its output compared with the block's once
both are masked.

What a block may hold, besides its commands:
- `<!-- setup: <shell command> -->` just before it runs first in the same shell, its output
  unshown (the state the text around the block says it starts from: what it exports or
  starts in the background, the block has);
- `<!-- skip: next "<reason>" -->` (Sybil's own) keeps it from running, with the reason.

A block that only exports settings prints nothing; it is followed, unseen, by
`chatops db upgrade`, which loads them: settings README shows must work as written.

Only a command's standard output is compared: MLflow's log lines go to standard error.
What differs from run to run is masked on both sides by the substitutions in MASKS (elapsed
times, durations, ports, ids, dates, traffic figures), a line that shows or not with timing
alone (UNTIMED) is left out of both, and rich tables are compared cell by
cell, a wrapped row joined again, whatever their widths."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sybil import Document, Example, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, FencedCodeBlockLexer

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "$ "
# a block runs at most this long (a deploy from a cold start is about 10 s on 2 busy cores)
BLOCK_TIMEOUT_S = 240

SETTINGS_LOAD_CHECK = "\nchatops db upgrade >/dev/null || exit $?"
# (pattern, replacement), applied in order to every line of what is expected and what ran
MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC"), "<date>"),
    (re.compile(r"\bsince \d\d:\d\d UTC"), "since <time>"),
    (re.compile(r"^\s*\d+\.\d\ds "), "<elapsed> "),  # a step's time since the start
    (re.compile(r"\(\d+(\.\d+)? ?(ms|s)\)"), "(<duration>)"),
    (re.compile(r"\b\d+(\.\d+)? ?ms\b"), "<ms>"),
    (re.compile(r"\b(\d+s|\d+m|\d+h|\d+d) ago\b"), "<ago> ago"),
    (re.compile(r"over the last \d+[smh]\b"), "over the last <window>"),
    (re.compile(r"\b\d+(\.\d+)?( req)?/min\b"), "<rate>/min"),
    (re.compile(r"\b\d+(\.\d+)?% errors"), "<n>% errors"),
    (re.compile(r"\berrors in \d+\b"), "errors in <n>"),
    (re.compile(r"\b\d+ MB resident\b"), "<n> MB resident"),
    (re.compile(r"\bbaked \d+ s:"), "baked <n> s:"),  # a canary step, promoted at its bake time
    (re.compile(r"\bprivate ports \d+(, \d+)*"), "private ports <ports>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    (re.compile(r"\brun [0-9a-f]{8}\b"), "run <id>"),
    (re.compile(r"\b(op|apr|job|dep)-[0-9a-f]{6,}\b"), r"\1-<id>"),
    (re.compile(r"(?<![\w/])/(tmp|home|root|Users|var)/\S+"), "<path>"),
]

# lines shown or not depending on timing alone, left out of both sides: a cold console's
# deploy says it waits for the model-server runtime when it reaches that step first
UNTIMED = re.compile(r"^\s*(\d+\.\d\ds )?\s*waiting for the model-server runtime to warm up\b")

ROW = re.compile(r"^[│┃]")
RULE = re.compile(r"^[┏┡┗└┌├╞┢┣]")


def mask(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line


def normalize(text: str) -> list[str]:
    """The lines as compared: masked; a table's rows as their cells' text (a row wrapped over
    several lines joined again, the padding and rules gone); whitespace runs as one space."""
    lines: list[str] = []
    row: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if ROW.match(line):
            cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
            if row is not None and cells and not cells[0] and len(cells) == len(row):
                row = [f"{a} {b}".strip() for a, b in zip(row, cells, strict=True)]
            else:
                if row is not None:
                    lines.append(_row(row))
                row = cells
            continue
        if row is not None:
            lines.append(_row(row))
            row = None
        if RULE.match(line) or not line.strip() or UNTIMED.match(line):
            continue
        lines.append(" ".join(mask(line).split()))
    if row is not None:
        lines.append(_row(row))
    return lines


def _row(cells: list[str]) -> str:
    # a cell wrapped mid-word (a long runtime id) and one wrapped at a space read the same
    return "| " + " | ".join("".join(mask(c).split()) for c in cells) + " |"


@dataclass
class Session:
    """A block's shell session: its commands (continuation lines and multi-line quotes
    joined) and what they print, all of it compared at once."""

    commands: list[str] = field(default_factory=list)
    expected: str = ""


def session(source: str) -> Session:
    out = Session()
    pending: str | None = None
    expected: list[str] = []
    for line in source.splitlines():
        if pending is not None:
            pending += "\n" + line
        elif line.startswith(PROMPT):
            pending = line[len(PROMPT) :]
        else:
            expected.append(line)
            continue
        if not _complete(pending):
            continue
        out.commands.append(pending)
        pending = None
    if pending is not None:
        raise ValueError(f"a command in README never ends: {pending!r}")
    out.expected = "\n".join(expected)
    return out


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command, comments=True)
    except ValueError:  # a quote still open: the command goes on on the next line
        return False
    return True


class ConsoleParser:
    """```console blocks, each run with the `<!-- setup: … -->` comments just before it."""

    def __init__(self) -> None:
        self.blocks = FencedCodeBlockLexer("console")
        self.setups = DirectiveInHTMLCommentLexer("setup")

    def __call__(self, document: Document) -> Iterable[Region]:
        blocks = list(self.blocks(document))
        setups: dict[int, list[str]] = {}
        for setup in self.setups(document):
            block = next((b for b in blocks if b.start >= setup.end), None)
            if block is None or not _adjacent(document.text[setup.end : block.start]):
                raise ValueError(f"a setup comment stands apart from any console block: {setup}")
            setups.setdefault(block.start, []).append(str(setup.lexemes["arguments"]).strip())
        for block in blocks:
            parsed = (setups.get(block.start, []), session(str(block.lexemes["source"])))
            yield Region(block.start, block.end, parsed, evaluate)


def _adjacent(between: str) -> bool:
    """A setup comment belongs to the block when only other comments stand between them."""
    between = re.sub(r"^\s*-->", "", between)  # the lexer's region ends before it
    return not re.sub(r"<!--.*?-->", "", between, flags=re.DOTALL).strip()


def shell_env(home: Path) -> dict[str, str]:
    """The environment of a reader with a fresh clone: no CHATOPS_ or Slack settings, the
    state directory new, `chatops` this tree's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHATOPS_", "SLACK_", "CML_", "MLFLOW_"))
    }
    bin_dir = home / "bin"
    bin_dir.mkdir(exist_ok=True)
    # `chatops` is this tree's, and `python` the tests' own (setups run it)
    for name, command in (("chatops", "-m bot.cli"), ("python", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {command} "$@"\n')
        shim.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["CHATOPS_STATE_DIR"] = str(home / ".state")
    env["HOME"] = str(home)
    return env


def evaluate(example: Example) -> str | None:
    setups, shell = example.parsed
    with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
        home = Path(tmp)
        env = shell_env(home)
        try:
            # one shell for all: what a setup exports or starts, the block has
            script = "".join(
                f"{{ {setup}\n}} >>setup.log 2>&1 || {{ echo setup failed: {n} >&2; exit 97; }}\n"
                for n, setup in enumerate(setups, 1)
            )
            script += "\n".join(shell.commands)
            if all(c.startswith("export ") for c in shell.commands):
                script += SETTINGS_LOAD_CHECK
            done = _bash(script, home, env)
            if done.returncode == 97 and "setup failed" in done.stderr:
                log = (home / "setup.log").read_text()[-3000:]
                return f"README line {example.line}: {done.stderr.strip()} of {setups}\n{log}"
        finally:
            _bash("chatops down >/dev/null 2>&1 || true", home, env)
    want, got = normalize(shell.expected), normalize(done.stdout)
    if done.returncode != 0 and script.endswith(SETTINGS_LOAD_CHECK):
        return f"README line {example.line}: its settings do not load:\n{done.stdout}{done.stderr}"
    if want == got:
        return None
    return (
        f"README line {example.line}: the block's output drifted from what runs\n"
        + "\n".join(_diff(want, got))
        + f"\n--- stderr ---\n{done.stderr[-3000:]}"
    )


def _bash(script: str, home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


def _diff(want: list[str], got: list[str]) -> Iterable[str]:
    import difflib

    return difflib.unified_diff(want, got, "README (masked)", "what runs (masked)", lineterm="")
