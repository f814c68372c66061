"""CHATOPS_TRACEMALLOC: a bot process asked for memory snapshots (SIGUSR1) names what it kept
between the first and the next, down to the line that allocated it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# a process that keeps a little more at every "command" (a list nobody empties), between two
# snapshots it asks for itself, as bench/soak.py asks the worker
KEEPER = textwrap.dedent(
    """
    import os, signal, time
    from pathlib import Path
    from bot import snapshots

    assert snapshots.install("keeper") is not None
    kept = []
    where = Path(os.environ["CHATOPS_TRACEMALLOC"])

    def ask(n):
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not (where / f"keeper-{os.getpid()}-{n}.snapshot").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    ask(1)
    for command in range(2000):
        kept.append("answered " * 20 + str(command))  # KEPT PER COMMAND
    ask(2)
    deadline = time.monotonic() + 30
    while not (where / f"keeper-{os.getpid()}-2.top.txt").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    """
)


def test_the_second_snapshot_names_the_line_that_kept_memory(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHATOPS_TRACEMALLOC": str(tmp_path)}
    subprocess.run([sys.executable, "-c", KEEPER], env=env, check=True, timeout=60)
    (top,) = tmp_path.glob("keeper-*-2.top.txt")
    said = top.read_text()
    first_growth = said.split("-- by line --")[1].strip().splitlines()[0]
    line = next(n for n, text in enumerate(KEEPER.splitlines(), 1) if "PER COMMAND" in text)
    assert first_growth.startswith(f"<string>:{line}: "), said
    assert len(list(tmp_path.glob("*.snapshot"))) == 2


def test_without_the_variable_nothing_is_traced(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHATOPS_TRACEMALLOC"}
    program = "import tracemalloc\nfrom bot import snapshots\n"
    program += "assert snapshots.install('x') is None and not tracemalloc.is_tracing()"
    subprocess.run(
        [sys.executable, "-c", program],
        env={**env, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=60,
    )
