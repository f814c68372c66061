"""Where acked commands go to run: threads of this process, or a worker process.

The worker process keeps the front's event loop free of the operations' CPU work (CPython
runs one thread at a time), so acks stay fast while deploys run; tests use threads so they
can share one warm model-server runtime.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the front process never runs work itself
    from bot.slack.work import Work

Command = dict[str, Any]

QUERIES = ("/status", "/history")
log = logging.getLogger("chatops.slack")


class Dispatcher(Protocol):
    def submit(self, command: Command) -> None: ...

    def wait_idle(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class ThreadDispatcher:
    """Operations on one pool, quick queries on another so they never wait behind deploys."""

    def __init__(self, work: Work, *, workers: int = 4) -> None:
        self.work = work
        self.operations = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="operation")
        self.queries = ThreadPoolExecutor(max_workers=4, thread_name_prefix="query")
        self.in_flight: set[Future[None]] = set()
        self._guard = threading.Lock()

    def submit(self, command: Command) -> Future[None]:
        pool = self.queries if command.get("command") in QUERIES else self.operations
        future = pool.submit(self.work.run, command)
        with self._guard:
            self.in_flight.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[None]) -> None:
        with self._guard:
            self.in_flight.discard(future)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._guard:
            pending = set(self.in_flight)
        return not wait(pending, timeout=timeout).not_done

    def close(self) -> None:
        self.queries.shutdown(wait=True)
        self.operations.shutdown(wait=True)


class ProcessDispatcher:
    """Commands as JSON lines to `python -m bot.slack.worker`; it answers `done` per command.
    A worker that died is started again at the next command."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self.env = env or dict(os.environ)
        self._next = 0
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closing = False
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.slack.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        reader.start()
        return proc

    def submit(self, command: Command) -> None:
        with self._lock:
            self._next += 1
            line = json.dumps({"id": self._next, "command": command}) + "\n"
            for _attempt in range(2):
                if self.proc.poll() is not None:
                    log.error(
                        "the worker process exited (code %s): starting a new one",
                        self.proc.returncode,
                    )
                    self.proc = self._start()
                try:
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(line)
                    self.proc.stdin.flush()
                except OSError:  # it died under us: the next attempt starts another
                    self.proc.wait()
                    continue
                self._pending.add(self._next)
                return
            raise RuntimeError("the worker process cannot be started")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                reply: dict[str, Any] = json.loads(line)
            except ValueError:  # not a reply: say so, and keep reading the replies
                log.warning("the worker wrote something that is not a reply: %.200s", line)
                continue
            with self._lock:
                self._pending.discard(int(reply["id"]))
                self._idle.notify_all()
        with self._lock:  # this worker is gone: nothing it held will finish
            if proc is self.proc:
                self._pending.clear()
                if not self._closing:
                    # start the next one now, so it is warm by the next command
                    log.error(
                        "the worker process exited (code %s): starting a new one", proc.wait()
                    )
                    self.proc = self._start()
            self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self) -> None:
        with self._lock:
            self._closing = True
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the worker finishes what it holds, then exits
        self.proc.wait()
