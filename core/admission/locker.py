"""The Locker: who may change an endpoint now, and what everyone else is told.

One lock per (environment, endpoint). A rollout or a stop takes it when it is admitted and
frees it when it ends (or when its TTL lapses, should every bot die); a freeze (`/lock`) is
a lock with no end. `/unlock` lifts freezes and the locks of operations that ended or whose
bot process died; a lock whose operation still runs in a live bot process is not lifted,
because a second rollout beside it would split the traffic: `/cancel` stops that operation
at its next step instead.
"""

from __future__ import annotations

from datetime import datetime

from core.errors import ChatOpsError, LeaseLost
from core.events import Notice, Refusal
from core.marks import command, person
from core.store.models import Hold, LockAttempt, LockRow, Operation, OperationState, aware, new_id
from core.store.repos import Repositories


class Locker:
    def __init__(self, repos: Repositories, *, ttl_s: float) -> None:
        self.locks = repos.locks
        self.operations = repos.operations
        self.clock = repos.clock
        self.ttl_s = ttl_s

    def try_lock(self, env: str, endpoint: str, *, holder: str, reason: str) -> LockAttempt:
        """Take the endpoint for one operation (until it ends, or `ttl_s` at most)."""
        return self.locks.try_lock(env, endpoint, holder=holder, reason=reason, ttl_s=self.ttl_s)

    def refusal(self, env: str, endpoint: str, attempt: LockAttempt) -> Refusal:
        """What someone who could not take the endpoint is told."""
        return Refusal(locked_text(env, endpoint, attempt))

    def held(self, env: str, endpoint: str) -> LockRow | None:
        """The lock on the endpoint while it holds (a lapsed one is no lock); None when free."""
        lock = self.locks.get(env, endpoint)
        if lock is None:
            return None
        if lock.expires_at is not None and aware(lock.expires_at) <= self.clock.now():
            return None
        return lock

    def in_the_way(self, env: str, endpoint: str) -> Refusal | None:
        """What whoever asks is told while the endpoint is held (a first deploy under way has
        no endpoint yet, but its lock says what is happening); None when it is free."""
        lock = self.held(env, endpoint)
        return None if lock is None else self.refusal(env, endpoint, LockAttempt.refused_by(lock))

    def freeze(self, env: str, endpoint: str, *, holder: str, reason: str) -> Notice | Refusal:
        """A lock with no end: nothing changes the endpoint until an admin unlocks it."""
        attempt = self.locks.try_lock(
            env, endpoint, holder=holder, reason=reason, ttl_s=None, sticky=True
        )
        if not attempt.acquired:
            return self.refusal(env, endpoint, attempt)
        return Notice(
            f"{endpoint} in {env} is frozen: {reason}. Nothing deploys or scales it until an "
            f"admin types `{command(f'unlock {endpoint} in {env}')}`."
        )

    def unlock(self, env: str, endpoint: str) -> Notice | Refusal:
        """Lift a freeze, or the lock of an operation that ended or whose bot died; a lock
        whose operation runs in a live bot process stays (the refusal says who and how)."""
        held = self.locks.get(env, endpoint)
        if held is None:
            return Refusal(f"{endpoint} in {env} is not locked")
        running = None if held.sticky else self.live_holder(env, endpoint, held)
        if running is not None:
            return Refusal(still_running_text(env, endpoint, held, running))
        dropped = self.locks.release(env, endpoint, held.token)
        if dropped is None:  # it ended, or was taken, between the two reads: look again
            return self.unlock(env, endpoint)
        return Notice(
            f"{endpoint} in {env} is unlocked (it was held by {person(dropped.holder)} for: "
            f"{dropped.reason})."
        )

    def live_holder(self, env: str, endpoint: str, held: LockRow) -> Operation | None:
        """The operation that holds `held` and runs in a bot process whose lease is alive."""
        now = self.clock.now()
        for op in self.operations.running():
            if (op.env, op.endpoint, op.lock_token) != (env, endpoint, held.token):
                continue
            alive = op.lease_expires_at is not None and aware(op.lease_expires_at) > now
            if op.state == OperationState.RUNNING and alive:
                return op
        return None

    def release(self, env: str, endpoint: str, token: str) -> None:
        """Free the endpoint, if the lock still carries `token` (nobody else's lock goes)."""
        self.locks.release(env, endpoint, token)

    def keep(self, op: Operation) -> str | None:
        """The token of the lock `op` goes on with, if it still holds it; a taken-over
        operation gives its lock a new token, so the process it was taken from can no
        longer release it. None when the lock lapsed or was lifted meanwhile."""
        held = self.locks.get(op.env, op.endpoint)
        if held is None or held.token != op.lock_token:
            return None
        if op.attempts == 1:
            return op.lock_token
        fresh = new_id("lock")
        if not self.locks.rotate(op.env, op.endpoint, op.lock_token, fresh):
            return op.lock_token
        if not self.operations.set_lock_token(op.id, fresh, hold=Hold.of(op)):
            # taken over meanwhile: the lock goes back to the token its new holder knows
            self.locks.rotate(op.env, op.endpoint, fresh, op.lock_token)
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")
        return fresh

    def retake(self, op: Operation, *, holder: str, reason: str) -> str:
        """Take again the lock of a resumed operation whose lock lapsed or was lifted; a
        ChatOpsError saying who holds the endpoint now, when someone does."""
        attempt = self.try_lock(op.env, op.endpoint, holder=holder, reason=reason)
        if not attempt.acquired:
            raise ChatOpsError(f"not resumed: while it waited, {taken_text(op, attempt)}")
        # recorded for whoever takes it over next
        if not self.operations.set_lock_token(op.id, attempt.token, hold=Hold.of(op)):
            self.locks.release(op.env, op.endpoint, attempt.token)
            raise LeaseLost(f"operation {op.id} was taken over by another bot process")
        return attempt.token


# -- texts -------------------------------------------------------------------------------
def _at(moment: datetime | None) -> str:
    return f"{aware(moment):%H:%M} UTC" if moment else ""


def locked_text(env: str, endpoint: str, attempt: LockAttempt) -> str:
    since = f" since {_at(attempt.since)}" if attempt.since else ""
    if attempt.sticky:
        return (
            f"{endpoint} in {env} is frozen by {person(attempt.holder)}{since}: "
            f"{attempt.reason}. An admin can lift it with "
            f"`{command(f'unlock {endpoint} in {env}')}`."
        )
    return (
        f"{endpoint} in {env} is locked by {person(attempt.holder)}{since} for: "
        f"{attempt.reason}. It is released when that operation ends; an admin can stop the "
        f"operation with `{command(f'cancel {endpoint} in {env}')}`."
    )


def still_running_text(env: str, endpoint: str, held: LockRow, op: Operation) -> str:
    at = f"at {op.step}" if op.step else "starting"
    until = f" (at the latest until {_at(held.expires_at)})" if held.expires_at else ""
    return (
        f"{endpoint} in {env} is not unlocked: {person(held.holder)} holds it since "
        f"{_at(held.since)} "
        f"for: {held.reason} ({op.id}, {at}). That operation is still running in a live bot "
        f"process, so the lock is held until it ends{until}; unlocking it now would let a "
        "second rollout split the traffic. To stop it at its next step, an admin can type "
        f"`{command(f'cancel {endpoint} in {env}')}`."
    )


def taken_text(op: Operation, attempt: LockAttempt) -> str:
    what = "froze" if attempt.sticky else "took"
    return (
        f"{person(attempt.holder)} {what} {op.endpoint} in {op.env} for: {attempt.reason}. "
        "Run the command again once it is free, if it is still wanted."
    )
