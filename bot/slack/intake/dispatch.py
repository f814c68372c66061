"""Where recorded jobs run: threads that take them from the state database (`JobTaker`, a
source of the process's one taker loop), in this process or in a worker process the front
starts and watches (`WorkerProcess`).

The worker process keeps the front's event loop free of the operations' CPU work (CPython
runs one thread at a time), so acks stay fast while deploys run; tests use threads so they
can share one warm model-server runtime. Either way a job is taken from the database, so a
job a dead process held is taken again by the next one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bot.slack.intake.jobs import FRONT, OPERATIONS, QUERIES
from core import failpoints
from core.errors import StoreError
from core.execution.leases import let_lapse, process_owner
from core.execution.taking import Source, Taker, Work, drained, rounds
from core.store.jobs import JobQueue, JobRow, JobState

log = logging.getLogger("chatops.slack")
FRONTS = frozenset({FRONT})
# how long a front waits, after its worker said it got a signal, to hear one itself before it
# starts another worker (a whole group stopped by Ctrl-C or systemd gets it at once)
STOPPING_GRACE_S = 2.0
# the longest wait before a worker that died while it worked is started again
TOOK_BACKOFF_S = 4.0
# workers in a row that took work and died before they were ready: then the front is unready
WARMING_CRASHES = 3
# why the front is unready while its first worker starts: commands are recorded meanwhile
STARTING = "the worker process is starting"


class Dispatcher(Protocol):
    def nudge(self) -> None: ...

    @property
    def unready(self) -> str | None: ...

    @property
    def refusing(self) -> str | None: ...

    def wait_idle(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


def _idle(queue: JobQueue, busy: Callable[[], bool], timeout: float | None) -> bool:
    deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
    while busy() or queue.unfinished(FRONTS):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class JobTaker:
    """This front's jobs, as sources of a process's one taker loop (`sources`): operations on
    `workers` threads, quick queries on four more, so they never wait behind deploys; and the
    answers and announcements a stopped process owed. The leases of jobs that run are renewed
    until they end. `start()` runs them on a loop of their own (a front that runs its jobs on
    threads); a worker process gives them to the loop that also takes operations and watches
    (`attach`)."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        run: Callable[[JobRow], JobState],
        send_owed: Callable[[], bool] = lambda: False,
        workers: int = 4,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.queue = queue
        self.run = run
        # sends one answer a stopped process recorded and did not send; False if none
        self.send_owed = send_owed
        self.workers = workers
        self.lease_s = lease_s
        self.poll_s = poll_s
        # the process's one owner name: a front that sees it exit ends its leases by it
        self.owner = owner or process_owner()
        self._held: dict[str, JobRow] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._taker: Taker | None = None
        self._own_taker = False
        self._renewing: threading.Thread | None = None

    unready: str | None = None
    refusing: str | None = None

    def sources(self) -> list[Source]:
        return [
            Source("Slack queries", lambda: self._claim(QUERIES), slots=4),
            Source("Slack jobs", lambda: self._claim(OPERATIONS), slots=self.workers),
            rounds("answers left unsent", drained(self.send_owed), self.poll_s),
        ]

    def attach(self, taker: Taker) -> JobTaker:
        """`taker` takes these jobs (it was given `sources()`): nudges go to it; their
        leases are renewed from now on."""
        self._taker = taker
        self._renewing = threading.Thread(target=self._renew, name="job-leases", daemon=True)
        self._renewing.start()
        return self

    def start(self) -> JobTaker:
        """Take these jobs on a loop of their own."""
        self._own_taker = True
        return self.attach(Taker(self.sources(), poll_s=self.poll_s).start())

    def nudge(self) -> None:
        """A job was recorded: look now instead of at the next poll."""
        if self._taker is not None:
            self._taker.nudge()

    def _claim(self, kinds: frozenset[str]) -> Work | None:
        row = self.queue.claim(self.owner, lease_s=self.lease_s, fronts=FRONTS, kinds=kinds)
        if row is None:
            return None
        with self._guard:
            self._held[row.id] = row
        return lambda: self._run(row)

    def _run(self, row: JobRow) -> None:
        state = JobState.DONE
        try:
            state = self.run(row)
            failpoints.hit("job.answered")
        except Exception:
            log.exception("job %s failed unexpectedly", row.id)
        finally:
            try:
                self.queue.finish(row, state)
            except StoreError as exc:  # it is taken again once its lease lapses
                log.warning("could not end job %s: %s", row.id, exc.message)
            with self._guard:
                self._held.pop(row.id, None)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._guard:
                held = sorted(self._held)
            try:
                self.queue.renew(held, self.owner, lease_s=self.lease_s)
            except StoreError as exc:  # the database may come back before the leases lapse
                log.warning("could not renew the leases of jobs %s: %s", held, exc.message)

    def _busy(self) -> bool:
        with self._guard:
            return bool(self._held)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Whether every job of this front ended within `timeout` seconds."""
        return _idle(self.queue, self._busy, timeout)

    def close(self) -> None:
        """Take nothing more (on a loop of their own); let what runs finish."""
        if self._own_taker and self._taker is not None:
            self._taker.stop(wait=True)
        self._stop.set()
        if self._renewing is not None:
            self._renewing.join()

    def hand_over(self, within: float) -> bool:
        """Take nothing more, give what runs up to `within` seconds to end (an operation a
        job runs stops at its next step boundary once the process's leases hand over), then
        end the leases of what is left so another process takes those jobs again at once.
        Whether every job ended in time."""
        left = True
        if self._own_taker and self._taker is not None:
            left = self._taker.hand_over(within)
        self._stop.set()
        try:
            self.queue.let_lapse(self.owner)
        except StoreError as exc:  # they lapse by themselves a lease later
            log.warning("could not end the leases of the jobs left: %s", exc.message)
        return left


class WorkerProcess:
    """`python -m bot.slack.worker`, started by the front and nudged over stdin. Its first
    line says whether it could start (`{"ready": true, "owner": name}` or `{"failed":
    reason}`). One that dies has its leases ended at once (by its owner name: what it ran is
    taken over now, not a lease later) and is started again, at once after a long life, else
    after a backoff doubling up to `max_backoff_s` (up to `TOOK_BACKOFF_S` for one that had
    taken work: it crashed while working, it did not fail to start); meanwhile the front is
    unready and says why. A front that is stopping starts none: `stopping()` says so the
    moment it is told. One that says it is stopping (it got the signal the front's whole
    group got) is given a moment for the front to hear it too before another is started."""

    def __init__(
        self,
        *,
        queue: JobQueue,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        max_backoff_s: float = 60.0,
        pause: Callable[[float], bool] | None = None,
    ) -> None:
        self.queue = queue
        self.env = env or dict(os.environ)
        self.args = args  # given to every worker it starts (`--front http`)
        self.max_backoff_s = max_backoff_s
        self._closing = threading.Event()
        # waits before a restart; True: stop instead (the front is closing)
        self.pause = pause or self._closing_within
        self.unready: str | None = STARTING
        self.starts = 0
        self._backoff = 0.0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self.owner = ""  # the running worker's owner name, as it said when ready
        self._warming_crashes = 0  # workers in a row that took work and died before ready

    @property
    def refusing(self) -> str | None:
        """Why commands are refused now: a worker could not start (nobody would run them).
        None while the first one starts: what is recorded then waits for it."""
        return None if self.unready == STARTING else self.unready

    def stopping(self) -> None:
        """The front is stopping: start no worker from now on, nor wait for one to be ready
        (safe in a signal handler)."""
        self._closing.set()
        self._ready.set()

    def start(self, timeout: float = 180.0) -> str | None:
        """Start the worker and wait until it says it is ready: None, or why it could not."""
        self._spawn()
        self._ready.wait(timeout)
        return self.unready if not self._ready.is_set() or self.unready else None

    def _spawn(self) -> None:
        with self._lock:
            if self._closing.is_set():
                return
            self.starts += 1
            self._ready.clear()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.slack.worker", *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            self.proc = proc
        threading.Thread(target=self._supervise, args=(proc,), daemon=True).start()

    def _supervise(self, proc: subprocess.Popen[str]) -> None:
        began = time.monotonic()
        was_ready = False
        took = False  # it took work (before it was ready, while its runtime warmed)
        signalled = False
        owner = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                said = json.loads(line)
            except ValueError:
                log.warning("the worker wrote something that is not a status: %.200s", line)
                continue
            if said.get("stopping"):
                signalled = True
                continue
            if said.get("taking"):  # its leases are known from now on
                took = True
                owner = self.owner = str(said.get("owner") or "")
                continue
            was_ready = bool(said.get("ready"))
            owner = self.owner = str(said.get("owner") or "")
            self.unready = None if was_ready else str(said.get("failed") or "unknown")
            self._ready.set()
        code = proc.wait()
        self._let_lapse(owner)
        if self._closing.is_set() or (signalled and self.pause(STOPPING_GRACE_S)):
            return
        # A worker that ran and died leaves the front ready: what is recorded meanwhile waits
        # in the database for the next one. One that could not start makes it unready. One
        # that took work and died while it warmed up crashed at that work: the next one is
        # started soon and waited for, unless that happened WARMING_CRASHES times in a row.
        crashed = took and not was_ready
        self._warming_crashes = self._warming_crashes + 1 if crashed else 0
        failed = not was_ready and (not took or self._warming_crashes >= WARMING_CRASHES)
        if failed:
            self.unready = (
                f"the worker process exited with code {code} "
                f"{self._warming_crashes} times in a row while it warmed up"
                if took
                else self.unready or f"the worker process exited with code {code}"
            )
        if was_ready or failed:
            self._ready.set()
        lived = time.monotonic() - began
        # one that cannot start waits longer and longer; one that crashed while it worked is
        # started again soon (what it ran waits for it), its jobs' attempts counted
        longest = self.max_backoff_s if failed else TOOK_BACKOFF_S if took else self.max_backoff_s
        self._backoff = 0.0 if lived > 60 else min(max(1.0, 2 * self._backoff), longest)
        log.error(
            "the worker process exited (code %s%s): starting a new one in %.0f s",
            code,
            f": {self.unready}" if self.unready else "",
            self._backoff,
        )
        if not self.pause(self._backoff):
            self._spawn()

    def _let_lapse(self, owner: str) -> None:
        if not owner:
            return
        try:
            ended = let_lapse(self.queue.db, owner)
        except StoreError as exc:  # they lapse by themselves a lease later
            log.warning("could not end the leases of the worker that exited: %s", exc.message)
            return
        if ended:
            log.info("the worker process left %d lease(s): ended, for a worker to take now", ended)

    def _closing_within(self, seconds: float) -> bool:
        return self._closing.wait(seconds)

    def nudge(self) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            return  # the next worker finds the job in the database
        try:
            with self._lock:
                proc.stdin.write("\n")
                proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def wait_idle(self, timeout: float | None = None) -> bool:
        return _idle(self.queue, lambda: False, timeout)

    def close(self, within: float = 60.0) -> None:
        """Start no worker again; tell the running one to stop (its stdin closes: it hands
        what it runs over at the next step boundary) and wait `within` seconds for it, then
        kill it; either way its leases end, so whichever process comes next resumes its work
        at once."""
        self._closing.set()
        with self._lock:
            proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            log.warning("the worker process did not stop within %.0f s: killed", within)
            proc.kill()
            proc.wait()
        self._let_lapse(self.owner)
