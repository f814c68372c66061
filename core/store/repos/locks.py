"""Endpoint locks as stored: who holds one, since when, for what, until when. What a lock
means (who may lift it, what to tell people) is the Locker's; this only keeps the rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from core.store.db import Database, aware
from core.store.models import LockAttempt, LockRow, new_id


class LockRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def try_lock(
        self,
        env: str,
        endpoint: str,
        *,
        holder: str,
        reason: str,
        ttl_s: float | None,
        sticky: bool = False,
    ) -> LockAttempt:
        """Take the endpoint, or learn who holds it. A lock whose TTL ran out is taken over;
        `ttl_s=None` never runs out. Two takers at once cannot both win (the primary key
        decides)."""
        token = new_id("lock")
        now = self.db.now()
        expires = now + timedelta(seconds=ttl_s) if ttl_s is not None else None
        try:
            with self.db.session(conflicts=True) as s:
                held = s.get(LockRow, (env, endpoint))
                if held is not None:
                    if held.expires_at is None or aware(held.expires_at) > now:
                        return LockAttempt.refused_by(held)
                    # only the lapsed lock seen, not one another taker put there since
                    gone = s.execute(
                        delete(LockRow).where(
                            LockRow.env == env,
                            LockRow.endpoint == endpoint,
                            LockRow.token == held.token,
                        )
                    )
                    if getattr(gone, "rowcount", 0) != 1:
                        raise IntegrityError("the lapsed lock changed", None, ValueError())
                s.add(
                    LockRow(
                        env=env,
                        endpoint=endpoint,
                        token=token,
                        holder=holder,
                        reason=reason,
                        sticky=sticky,
                        since=now,
                        expires_at=expires,
                    )
                )
        except IntegrityError:
            taken = self.get(env, endpoint)
            if taken is None:
                return self.try_lock(
                    env, endpoint, holder=holder, reason=reason, ttl_s=ttl_s, sticky=sticky
                )
            return LockAttempt.refused_by(taken)
        return LockAttempt(True, token, holder, reason, now, sticky)

    def get(self, env: str, endpoint: str) -> LockRow | None:
        """The lock on the endpoint as stored (lapsed or not), or None."""
        with self.db.session() as s:
            return s.get(LockRow, (env, endpoint))

    def release(self, env: str, endpoint: str, token: str | None = None) -> LockRow | None:
        """Drop the lock (only if it still carries `token`, when given); what was dropped."""
        with self.db.session() as s:
            held = s.get(LockRow, (env, endpoint))
            if held is None or (token is not None and held.token != token):
                return None
            gone = s.execute(
                delete(LockRow).where(
                    LockRow.env == env, LockRow.endpoint == endpoint, LockRow.token == held.token
                )
            )
            return held if getattr(gone, "rowcount", 0) == 1 else None

    def rotate(self, env: str, endpoint: str, old: str, new: str) -> bool:
        """Give a held lock a new token (a process taking over an operation does, so the
        one it took it from can no longer release it); False if `old` no longer holds it."""
        with self.db.session() as s:
            changed = s.execute(
                update(LockRow)
                .where(LockRow.env == env, LockRow.endpoint == endpoint, LockRow.token == old)
                .values(token=new)
                .execution_options(synchronize_session=False)
            )
            return getattr(changed, "rowcount", 0) == 1
