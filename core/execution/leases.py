"""The operations one bot process holds, and the lease that says so to the others.

A process that takes an operation holds it until its lease lapses; while it runs it, a
heartbeat renews the lease every third of its length. A process that dies (kill -9, a lost
machine) stops renewing, and once the lease lapses any other process may take the operation
over and resume it from what its steps recorded.

A process that stops on purpose does not make the others wait for that: `hand_over` makes
every operation it runs stop at its next step boundary (the step recorded), and `let_lapse`
ends a process's leases at once, so another process resumes its work straight away. A front
calls it for a worker process it saw exit (it knows the worker's owner name).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import StoreError
from core.store.db import Database
from core.store.jobs import JobQueue
from core.store.repos.operations import OperationRepository
from core.store.repos.outbox import OutboxRepository
from core.store.repos.watches import WatchRepository

log = logging.getLogger("chatops.core")


def process_owner() -> str:
    """This process's name in `operations.owner`: host, pid and a nonce (pids recur)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leases:
    def __init__(
        self, operations: OperationRepository, *, lease_s: float, owner: str | None = None
    ) -> None:
        self.operations = operations
        self.lease_s = lease_s
        self.owner = owner or process_owner()
        self._held: set[str] = set()
        self._lost: set[str] = set()  # held here, but their lease lapsed: another may run them
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._handing_over = False
        self._stopping = threading.Event()
        self._beat: threading.Thread | None = None

    def hand_over(self) -> None:
        """This process stops: each operation it runs stops at its next step boundary, its
        step recorded, for another process to take over (see `let_lapse`)."""
        self._handing_over = True
        self._stopping.set()

    @property
    def handing_over(self) -> bool:
        return self._handing_over

    def pause(self, seconds: float) -> None:
        """Wait `seconds` inside a step (a canary between two looks), less once this process
        hands over."""
        self._stopping.wait(seconds)

    @contextmanager
    def hold(self, op_id: str) -> Iterator[None]:
        """Keep `op_id`'s lease renewed while the block runs."""
        with self._guard:
            self._held.add(op_id)
            if self._beat is None:
                self._beat = threading.Thread(
                    target=self._renew_forever, name="lease-heartbeat", daemon=True
                )
                self._beat.start()
        try:
            yield
        finally:
            with self._guard:
                self._held.discard(op_id)
                self._lost.discard(op_id)

    def ended(self, op_id: str) -> None:
        """This process is ending `op_id`: its lease needs no renewing from now on, and the
        heartbeat must not take the operation's end for a lapsed lease."""
        with self._guard:
            self._held.discard(op_id)
            self._lost.discard(op_id)

    def lost(self, op_id: str) -> bool:
        """Whether the heartbeat found `op_id`'s lease gone (taken over, or ended elsewhere)."""
        with self._guard:
            return op_id in self._lost

    @property
    def held(self) -> set[str]:
        with self._guard:
            return set(self._held)

    def _renew_forever(self) -> None:
        while not self._closed:
            self._wake.wait(self.lease_s / 3)
            self.beat()

    def beat(self) -> None:
        """Renew every lease held here once; those found gone are marked lost (what the
        heartbeat does every third of a lease)."""
        ids = sorted(self.held)
        try:
            kept = self.operations.renew(ids, self.owner, lease_s=self.lease_s)
        except StoreError as exc:  # the database may come back before the lease lapses
            log.warning("could not renew the leases of %s: %s", ids, exc.message)
            return
        with self._guard:
            # one this process ended meanwhile has left `_held`: it did not lapse
            gone = (set(ids) - kept) & self._held
            self._lost |= gone
        for lost in sorted(gone):
            log.error("the lease of %s lapsed: another bot process may have taken it", lost)

    def close(self) -> None:
        self._closed = True
        self._wake.set()


def let_lapse(db: Database, owner: str) -> int:
    """End every lease `owner` holds (operations, jobs, watches, what it owes) now, as if it
    had lapsed: its process stopped or was seen to exit, so another process may take its work
    at once.
    Only what is still under way under `owner` is touched; how many leases ended."""
    return (
        OperationRepository(db).let_lapse(owner)
        + JobQueue(db).let_lapse(owner)
        + WatchRepository(db).let_lapse(owner)
        + OutboxRepository(db).let_lapse(owner)
    )
