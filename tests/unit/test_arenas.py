"""A bot process that runs its work on many threads keeps few malloc arenas (glibc gives each
new thread its own, and memory freed in one serves only the threads allocating there: the
Slack worker grew about 5 MB every 1,000 commands that way, see bench/soak.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# eight threads, each allocating outside Python's own pools (blocks over 512 bytes), then
# glibc's own count of its arenas (malloc_stats writes one "Arena N:" a line to stderr)
THREADS = textwrap.dedent(
    """
    import ctypes, sys, threading
    from bot.arenas import few_arenas

    if sys.argv[1] == "few":
        assert few_arenas()

    # all eight alive at once, each holding its arena: on a busy machine threads that ran
    # one after another would hand one arena on to the next, whatever the setting
    together = threading.Barrier(8)

    def work():
        first = bytearray(8192)
        together.wait()
        for _ in range(200):
            kept = [bytearray(8192) for _ in range(20)]
            del kept
        del first

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctypes.CDLL(None).malloc_stats()
    """
)


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", THREADS, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return len(re.findall(r"^Arena \d+:", done.stderr, re.MULTILINE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_a_process_of_many_threads_keeps_at_most_two_arenas() -> None:
    assert arenas("as-is") > 2  # what glibc does by itself: an arena for each new thread
    assert 1 <= arenas("few") <= 2


# a thread frees what it held, but a block still in use above it keeps glibc from giving the
# freed pages back by itself; `trim` gives them back (VmRSS, read from /proc, falls)
TRIMMED = textwrap.dedent(
    """
    import ctypes, sys
    from bot.arenas import trim

    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    ctypes.CDLL(None).mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: glibc trims only when asked
    ctypes.CDLL(None).mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: every block on the heap
    held = [bytearray(4096) for _ in range(20000)]  # about 80 MB on the heap
    top = bytearray(4096)  # in use, above all of them
    del held
    before = rss_kb()
    trimmed = trim()
    print(before, rss_kb(), trimmed)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_gives_freed_memory_back_to_the_system() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", TRIMMED], env=env, capture_output=True, text=True, timeout=60
    )
    before, after, trimmed = done.stdout.split()
    assert trimmed == "True"
    assert int(before) - int(after) > 50_000  # KB: most of the 80 MB freed is given back
