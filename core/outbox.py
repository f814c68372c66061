"""What the bot owes people outside its database — an operation's final word, a job's
answer — recorded in the transaction that decides it, then sent once.

The process that records a row holds it for a lease and sends it at once; if it dies
first, another bot process takes the row when the lease lapses (at once when its front saw
it die) and sends it. A row is marked sent right after its send: only a crash between the
two can send it twice.
"""

from __future__ import annotations

import logging
from typing import Any

from core.errors import StoreError
from core.store.models import OwedRow
from core.store.repos.outbox import OutboxRepository

log = logging.getLogger("chatops.core")

FINAL = "final"  # an operation's last event: how it ended
ANSWER = "answer"  # a job's answer to whoever asked
ANNOUNCE = "announce"  # news from the registry, for the announce channel
ALERT = "alert"  # a watch window's or the sentinel's verdict: on-call, the operation's thread


class Outbox:
    def __init__(
        self, repo: OutboxRepository, *, owner: str, lease_s: float, max_attempts: int
    ) -> None:
        self.repo = repo
        self.owner = owner
        self.lease_s = lease_s
        self.max_attempts = max_attempts

    def owe(self, kind: str, payload: dict[str, Any], **about: str) -> str:
        """Record what is owed, held by this process (inside the caller's open transaction,
        if any); its id, for `sent`. `about`: as `row` takes it."""
        return self.repo.add(self.row(kind, payload, **about))

    def hand_on(self, kind: str, payload: dict[str, Any], **about: str) -> str:
        """Record what is owed for whichever process tells `kind` to take at its next round
        (this one cannot tell it: an operation's alert to on-call); its id."""
        return self.repo.add(self.repo.row(kind, payload, owner="", lease_s=0, **about))

    def row(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        front: str = "",
        operation_id: str = "",
        job_id: str = "",
    ) -> OwedRow:
        """What is owed, held by this process, for a repository to add in the transaction
        that records what it reports."""
        return self.repo.row(
            kind,
            payload,
            owner=self.owner,
            lease_s=self.lease_s,
            front=front,
            operation_id=operation_id,
            job_id=job_id,
        )

    def sent(self, row_id: str) -> None:
        """It was sent: nobody sends it again. A database that fails here leaves it to be
        sent again once its lease lapses (logged)."""
        try:
            self.repo.sent(row_id)
        except StoreError as exc:
            log.warning("could not mark %s sent: %s", row_id, exc.message)

    def take(self, kind: str, fronts: frozenset[str]) -> OwedRow | None:
        """One row of `kind` a process left unsent (it died), now this process's to send;
        one taken too many times is marked sent unsent, logged, so it cannot block."""
        while (
            row := self.repo.claim(
                self.owner, lease_s=self.lease_s, kinds=frozenset({kind}), fronts=fronts
            )
        ) is not None:
            if row.attempts <= self.max_attempts:  # the first try counts: its process's
                return row
            log.error(
                "%s %s could not be sent in %d attempts: given up", kind, row.id, row.attempts - 1
            )
            self.repo.sent(row.id)
        return None

    def answered(self, job_id: str) -> bool:
        """Whether the job recorded its answer already (taken again after its process died:
        it answers nothing new); what it said on the way there does not count."""
        return any(row.payload.get("final", True) for row in self.repo.of_job(job_id))
