"""Few malloc arenas for a bot process that runs its work on many threads.

glibc gives each new thread an arena of its own, up to eight per core, and memory freed in one
arena serves only the threads allocating there. The Slack worker runs its jobs, operations,
watches and heartbeats on a pool of threads, so its resident memory grew with the commands it
ran (about 5 MB every 1,000 in `bench/soak.py`) though what it keeps did not (tracemalloc: a
few hundred KB, SQLAlchemy's bounded caches filling). Two arenas keep it within a few MB:
Python takes its small objects from pools of its own anyway, and the threads wait on the GIL
more than on malloc. What is freed stays the process's until glibc gives it back, which it
does only from the top of the heap: `trim` gives back every free page, a round of the
process's taker loop every `TRIM_S`. Every 60 s let the worker swing by 7 MB between rounds
over a soak of 20,000 commands (each deploy frees what it took only after it); every 10 s
keeps it within about 3 MB, for a few milliseconds of a thread that is otherwise idle.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's <malloc.h>
ARENAS = 2
TRIM_S = 10.0


def few_arenas(most: int = ARENAS) -> bool:
    """At most `most` malloc arenas in this process from now on (call it before starting
    threads); whether the C library took it. Only glibc does; `MALLOC_ARENA_MAX` set in the
    environment is left as it is."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc (musl has no mallopt to speak of)
        return False
    return bool(mallopt(M_ARENA_MAX, most))


def trim() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc's `malloc_trim`);
    whether there were some. A few milliseconds; nothing outside glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    return bool(malloc_trim(0))
