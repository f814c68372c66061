"""Memory snapshots of a bot process on request, to find what it keeps from one command to
the next.

With `CHATOPS_TRACEMALLOC=<dir>` a process traces its allocations once it is ready
(tracemalloc) and, on each SIGUSR1, writes a snapshot to `<dir>/<role>-<pid>-<n>.snapshot`;
from the second on, also what grew most since the first, by line and by traceback, to
`<dir>/<role>-<pid>-<n>.top.txt`, and one line of it to the log. Tracing costs memory and time:
it is for finding leaks (`bench/soak.py --tracemalloc DIR` signals the worker after the first
1,000 commands and after the last), never for a bot at work.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import tracemalloc
from pathlib import Path
from types import FrameType

ENV_VAR = "CHATOPS_TRACEMALLOC"
FRAMES = 25
TOP = 30

log = logging.getLogger("chatops")


class Snapshots:
    """Snapshots of this process into `directory`, one per `take()`; the first is the base
    every later one is compared with."""

    def __init__(self, directory: Path, *, role: str) -> None:
        self.directory = directory
        self.role = role
        self.taken = 0
        self._first: tracemalloc.Snapshot | None = None
        self._lock = threading.Lock()

    def take(self) -> Path:
        """Write a snapshot (and, after the first, what grew since the first); its path."""
        with self._lock:
            self.taken += 1
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [
                    tracemalloc.Filter(False, tracemalloc.__file__),
                    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
                    tracemalloc.Filter(False, "<unknown>"),
                ]
            )
            stem = self.directory / f"{self.role}-{os.getpid()}-{self.taken}"
            partial = stem.with_suffix(".partial")
            snapshot.dump(str(partial))
            partial.rename(stem.with_suffix(".snapshot"))  # whoever waits for it sees it whole
            if self._first is None:
                self._first = snapshot
                log.info("memory snapshot %s taken: the base of the next ones", stem.name)
                return stem.with_suffix(".snapshot")
            by_line = snapshot.compare_to(self._first, "lineno")
            by_trace = snapshot.compare_to(self._first, "traceback")
            grown = sum(d.size_diff for d in by_line)
            lines = [f"{self.role} {os.getpid()}: {grown / 2**20:+.2f} MiB traced since the first"]
            lines.append("\n-- by line --")
            lines += [str(d) for d in by_line[:TOP]]
            lines.append("\n-- by traceback --")
            for d in by_trace[: TOP // 3]:
                lines.append(f"{d.size_diff / 1024:+.1f} KiB, {d.count_diff:+d} blocks")
                lines += [f"    {frame}" for frame in d.traceback.format()[-2 * FRAMES :]]
            partial.write_text("\n".join(lines) + "\n")
            partial.rename(stem.with_suffix(".top.txt"))
            log.info(
                "memory snapshot %s: %+.2f MiB traced since the first; most: %s",
                stem.name,
                grown / 2**20,
                by_line[0] if by_line else "nothing",
            )
            return stem.with_suffix(".top.txt")


def install(role: str) -> Snapshots | None:
    """Trace this process's allocations from now on and take a snapshot on each SIGUSR1,
    when `CHATOPS_TRACEMALLOC` names a directory; None otherwise."""
    where = os.environ.get(ENV_VAR, "")
    if not where:
        return None
    directory = Path(where).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    snapshots = Snapshots(directory, role=role)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        # a snapshot takes seconds: not in the signal handler, which holds up the main thread
        threading.Thread(target=_take, args=(snapshots,), name="snapshot", daemon=True).start()

    signal.signal(signal.SIGUSR1, on_signal)
    return snapshots


def _take(snapshots: Snapshots) -> None:
    try:
        snapshots.take()
    except Exception:  # a diagnostic: it must never end the process it looks at
        log.exception("the memory snapshot failed")
