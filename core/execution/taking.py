"""The one loop of a bot process that takes work: every kind of leased row it runs (Slack
jobs, operations, watch windows) and every round it does (telling what stopped processes
owe, checking endpoints, looking for registry events) is a `Source` of one `Taker`.

A source says how to take one unit of its work (`take`: claim a row, or say a round is due)
and how many of its units may run at once (`slots`). The taker asks each source in turn,
runs what it got on a shared pool of threads, and waits for a nudge or `poll_s` only when no
source had anything. Nothing is taken that cannot run now (a source without a free slot is
not asked), so a row another process could run is never held here waiting; and one slow
source (a deploy, a health check that times out, Slack being slow) never keeps the others
from being asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from core.errors import StoreError

log = logging.getLogger("chatops.core")

Work = Callable[[], object]


@dataclass
class Source:
    """One kind of work: `take()` claims one unit and returns what runs it, or None when
    there is nothing now; at most `slots` units run at once; with `every_s`, it is asked at
    most once in that many seconds (a round, such as the watch's)."""

    name: str
    take: Callable[[], Work | None]
    slots: int = 1
    every_s: float = 0.0
    _free: threading.Semaphore = field(init=False, repr=False)
    _next: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._free = threading.Semaphore(self.slots)


def rounds(name: str, run: Callable[[], object], every_s: float) -> Source:
    """A source whose work is a round of `run` every `every_s` seconds (one at a time)."""
    return Source(name, lambda: run, slots=1, every_s=every_s)


def drained(send_one: Callable[[], bool]) -> Callable[[], None]:
    """A round that calls `send_one` until it says there was nothing (left) to send."""

    def drain() -> None:
        while send_one():
            pass

    return drain


class Taker:
    def __init__(
        self,
        sources: list[Source],
        *,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = list(sources)
        self.poll_s = poll_s
        self._clock = clock
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, sum(s.slots for s in self.sources)), thread_name_prefix="take"
        )
        self._running: set[Future[None]] = set()
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Taker:
        self._thread = threading.Thread(target=self._loop, name="taker", daemon=True)
        self._thread.start()
        return self

    def nudge(self) -> None:
        """Something was recorded to take: look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            took = False
            for source in self.sources:
                if self._stop.is_set():
                    return
                took = self._take(source) or took
            if not took:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def _take(self, source: Source) -> bool:
        if not source._free.acquire(blocking=False):
            return False
        now = self._clock()
        if source.every_s and now < source._next:
            source._free.release()
            return False
        work: Work | None = None
        try:
            work = source.take()
        except StoreError as exc:  # the database may be back at the next look
            log.warning("could not look for %s: %s", source.name, exc.message)
        except Exception:  # the loop that takes everything must outlive one bad row
            log.exception("looking for %s failed unexpectedly", source.name)
        if source.every_s:
            source._next = now + source.every_s
        if work is None or self._stop.is_set():
            source._free.release()
            return False
        try:
            running = self._pool.submit(self._run, source, work)
        except RuntimeError:  # stopped meanwhile: the lease of what was taken ends elsewhere
            source._free.release()
            return False
        with self._guard:
            self._running.add(running)
        running.add_done_callback(self._done)
        # a round is not a row taken: whether there is more to take is asked again anyway
        return not source.every_s

    def _done(self, running: Future[None]) -> None:
        with self._guard:
            self._running.discard(running)

    def _run(self, source: Source, work: Work) -> None:
        try:
            work()
        except StoreError as exc:  # what it was doing is taken again, here or elsewhere
            log.warning("%s: the state database failed: %s", source.name, exc.message)
        except Exception:
            log.exception("%s: a unit of work failed unexpectedly", source.name)
        finally:
            source._free.release()
            self._wake.set()  # a slot is free: there may be more of it to take

    def stop(self, *, wait: bool = True) -> None:
        """Take nothing more; with `wait`, let what runs finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=wait)

    def hand_over(self, within: float) -> bool:
        """Take nothing more and give what runs up to `within` seconds to end (an operation
        stops at its next step boundary once its process's leases hand over); whether all of
        it ended in time. The leases of what is left are ended by the caller."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(within)
        with self._guard:
            running = list(self._running)
        _done, stuck = wait(running, timeout=within)
        self._pool.shutdown(wait=False)
        return not stuck
