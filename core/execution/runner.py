"""The Runner runs admitted operations through Rollouts, holding each one's lease while it
runs: the one a waiting caller just admitted (`run`), queued ones, and those whose bot
process died (its lease lapsed), which resume from what their steps recorded.

Any number of bot processes may share one database, and each operation is run by exactly
one (`OperationRepository.claim` decides). The final word of an operation whose process died
right after ending it (it was recorded, not sent) is told by the Runner that finds it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from core.config import Settings
from core.errors import StoreError
from core.events import OWED, RETOLD, Event, EventKind, NullReporter, Outcome, Reporter
from core.execution.leases import Leases
from core.execution.rollout import Rollouts
from core.outbox import FINAL, Outbox
from core.store.models import Operation, OwedRow
from core.store.repos.operations import OperationRepository

log = logging.getLogger("chatops.core")

ReporterFor = Callable[[Operation], Reporter]


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        operations: OperationRepository,
        rollouts: Rollouts,
        leases: Leases,
        outbox: Outbox,
        reporter_for: ReporterFor = lambda _op: NullReporter(),
        fronts: frozenset[str] = frozenset({""}),
        workers: int = 4,
        poll_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.operations = operations
        self.rollouts = rollouts
        self.leases = leases
        self.outbox = outbox
        self.reporter_for = reporter_for
        # only operations this process can report where they were asked ("" : no front)
        self.fronts = fronts
        self.workers = workers
        self.poll_s = poll_s if poll_s is not None else settings.runner_poll_s
        self._slots = threading.Semaphore(workers)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runner")
        self._running: set[Future[None]] = set()
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        return self.leases.owner

    def take(self) -> Operation | None:
        """One operation nobody holds, now held by this process; None when there is none,
        or when this process is handing its work over (it is stopping)."""
        if self.leases.handing_over:
            return None
        return self.operations.claim(
            self.owner,
            lease_s=self.settings.lease_s,
            fronts=self.fronts,
            exclude=frozenset(self.leases.held),
        )

    def run(self, op: Operation, reporter: Reporter | None = None) -> Outcome:
        """Run `op`, held by this process, to its end, its lease renewed meanwhile; events
        go to `reporter` (else to where `op` was asked from)."""
        if op.attempts > 1:
            log.warning(
                "taking over operation %s (%s of %s in %s), attempt %d",
                op.id,
                op.kind,
                op.endpoint,
                op.env,
                op.attempts,
            )
        if reporter is None:
            try:
                reporter = self.reporter_for(op)
            except Exception:  # no way to tell people must not leave the operation unrun
                log.exception("no reporter for operation %s", op.id)
                reporter = NullReporter()
        with self.leases.hold(op.id):
            outcome = self.rollouts.execute(op, reporter)
        if self.leases.handing_over:  # left at a step boundary: another process resumes it now
            self.operations.let_lapse(self.owner, [op.id])
        return outcome

    def run_pending(self) -> int:
        """Run, one after another in this thread, every operation there is to take now, and
        tell every final word a stopped process left untold."""
        count = 0
        while (op := self.take()) is not None:
            self.run(op)
            count += 1
        while self.tell_owed():
            pass
        return count

    def tell_owed(self) -> bool:
        """Tell one final word another process recorded and died before sending (where the
        operation was asked from), then mark it sent; False when there is none."""
        if self.leases.handing_over:
            return False
        row = self.outbox.take(FINAL, self.fronts)
        if row is None:
            return False
        op = self.operations.get(row.operation_id)
        if op is not None:
            self._tell(op, row)
        self.outbox.sent(row.id)
        return True

    def _tell(self, op: Operation, row: OwedRow) -> None:
        final = row.payload
        try:
            reporter = self.reporter_for(op)
            log.info("telling the end of operation %s, left untold by its stopped process", op.id)
            # the thread's parent names what it is about, then says how it ended
            reporter.report(
                Event(op.id, EventKind.STARTED, "", str(final.get("headline") or ""), 0.0)
            )
            reporter.report(
                Event(
                    op.id,
                    EventKind(str(final.get("kind") or EventKind.SUCCEEDED.value)),
                    "",
                    str(final.get("message") or ""),
                    float(final.get("elapsed_s") or 0.0),
                    # perhaps told already: the reporter looks for it by its row's id first
                    {**dict(final.get("data") or {}), OWED: row.id, RETOLD: True},
                )
            )
        except Exception:  # a front that cannot tell it now: logged, never retried forever
            log.exception("could not tell the end of operation %s", op.id)

    # -- in the background -----------------------------------------------------------------
    def start(self) -> Runner:
        self._thread = threading.Thread(target=self._loop, name="runner", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            # a free slot first, then an operation: nothing is taken that cannot run now
            if not self._slots.acquire(timeout=self.poll_s):
                continue
            if self._stop.is_set():
                self._slots.release()
                return
            try:
                op = self.take()
            except StoreError as exc:
                log.warning("could not look for operations to run: %s", exc.message)
                op = None
            if op is None:
                self._slots.release()
                try:
                    told = self.tell_owed()
                except StoreError as exc:
                    log.warning("could not look for final words to tell: %s", exc.message)
                    told = False
                except Exception:  # the loop that takes operations must outlive one bad row
                    log.exception("telling a final word failed unexpectedly")
                    told = False
                if not told:
                    self._stop.wait(self.poll_s)
                continue
            try:
                running = self._pool.submit(self._run_in_slot, op)
                self._running.add(running)
                running.add_done_callback(self._running.discard)
            except RuntimeError:  # stopped meanwhile: let another process run it
                self.operations.give_back(op.id, self.owner)
                self._slots.release()
                return

    def _run_in_slot(self, op: Operation) -> None:
        try:
            self.run(op)
        except Exception:
            log.exception("operation %s failed unexpectedly", op.id)
        finally:
            self._slots.release()

    def stop(self, *, wait: bool = True) -> None:
        """Take nothing more; with `wait`, let what runs finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # it notices within poll_s, and takes nothing after
        self._pool.shutdown(wait=wait)

    def hand_over(self, within: float) -> bool:
        """Take nothing more, and leave every operation this process runs (here or on any
        Runner sharing its leases) at its next step boundary, its lease ended, so another
        process resumes it at once. Whether all were left within `within` seconds; a step
        still running then keeps going until the process exits, its lease ended all the same
        (its writes are fenced: the next holder's win)."""
        self.leases.hand_over()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(within)
        _done, stuck = wait(list(self._running), timeout=within)
        self._pool.shutdown(wait=False)
        try:  # what is left of its operations is taken elsewhere now
            self.operations.let_lapse(self.owner)
        except StoreError as exc:  # it lapses by itself a lease later
            log.warning("could not end the leases this process held: %s", exc.message)
        return not stuck
