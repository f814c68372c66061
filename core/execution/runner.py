"""The Runner runs admitted operations through Rollouts, holding each one's lease while it
runs: the one a waiting caller just admitted (`run`), queued ones, and those whose bot
process died (its lease lapsed), which resume from what their steps recorded.

Any number of bot processes may share one database, and each operation is run by exactly
one (`OperationRepository.claim` decides). The final word of an operation whose process died
right after ending it (it was recorded, not sent) is told by the Runner that finds it. In
the background both are taken by the process's one loop (`sources`, core/execution/taking.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.config import Settings
from core.events import OWED, RETOLD, Event, EventKind, NullReporter, Outcome, Reporter
from core.execution.leases import Leases
from core.execution.rollout import Rollouts
from core.execution.taking import Source, Work, drained, rounds
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
    def sources(self) -> list[Source]:
        """What this Runner gives its process's one taker loop: operations nobody holds (on
        `workers` slots), and the final words stopped processes left untold."""
        return [
            Source("operations", self._taken, slots=self.workers),
            rounds("final words left untold", drained(self.tell_owed), self.poll_s),
        ]

    def _taken(self) -> Work | None:
        op = self.take()
        return None if op is None else (lambda: self.run(op))
