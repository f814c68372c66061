"""Watch windows and endpoints announced down, as stored.

A watch is taken by one bot process at a time, as an operation is: it is free while nobody
holds it or its holder's lease lapsed; every write about it is conditional on the holder
(`owner`) and its state, so a process that lost it writes nothing. What a watch means (when
it fails, what happens then) is the Watcher's (core/oncall/watching.py); this only keeps the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.store.db import Database
from core.store.models import DownRow, OwedRow, WatchRow, WatchState, new_id
from core.store.repos import leased

JUDGED = (WatchState.CLEAN, WatchState.ROLLED_BACK, WatchState.HELD, WatchState.FAILED)


class WatchRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- watches ---------------------------------------------------------------------------
    def begin(
        self,
        *,
        env: str,
        endpoint: str,
        operation_id: str,
        model: str,
        version: int,
        deployment: str,
        previous: int | None,
        reply_to: Mapping[str, Any],
        watch_s: float,
    ) -> WatchRow:
        """A new watch of the endpoint for `watch_s` from now; one it had ends, superseded
        (the rollout that begins this one replaced what that one watched)."""
        now = self.db.now()
        row = WatchRow(
            id=new_id("watch"),
            env=env,
            endpoint=endpoint,
            operation_id=operation_id,
            model=model,
            version=version,
            deployment=deployment,
            previous=previous,
            reply_to=dict(reply_to),
            front=str(reply_to.get("front") or ""),
            state=WatchState.WATCHING,
            started_at=now,
            ends_at=now + timedelta(seconds=watch_s),
            checks=0,
            downs=0,
            owner="",
            detail="",
        )
        with self.db.session() as s:
            s.execute(
                update(WatchRow)
                .where(
                    WatchRow.env == env,
                    WatchRow.endpoint == endpoint,
                    WatchRow.state == WatchState.WATCHING,
                )
                .values(
                    state=WatchState.SUPERSEDED,
                    detail=f"replaced by the watch after {operation_id}",
                    finished_at=now,
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            s.add(row)
        return row

    def interrupt(self, env: str, endpoint: str, *, detail: str) -> bool:
        """End the endpoint's watch under way, if any, as superseded (someone acted on the
        endpoint: the watch no longer decides for it); whether there was one."""
        with self.db.session() as s:
            ended = s.execute(
                update(WatchRow)
                .where(
                    WatchRow.env == env,
                    WatchRow.endpoint == endpoint,
                    WatchRow.state == WatchState.WATCHING,
                )
                .values(
                    state=WatchState.SUPERSEDED,
                    detail=detail,
                    finished_at=self.db.now(),
                    lease_expires_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(ended, "rowcount", 0))

    def verdict(self, env: str, endpoint: str, version: int) -> WatchRow | None:
        """The latest watch of `version` on the endpoint that judged it (clean or failed, not
        cut short); None when none did."""
        query = (
            select(WatchRow)
            .where(
                WatchRow.env == env,
                WatchRow.endpoint == endpoint,
                WatchRow.version == version,
                WatchRow.state.in_(JUDGED),
            )
            .order_by(WatchRow.started_at.desc())
            .limit(1)
        )
        with self.db.session() as s:
            return s.scalars(query).first()

    def get(self, watch_id: str) -> WatchRow | None:
        with self.db.session() as s:
            return s.get(WatchRow, watch_id)

    def watching(self) -> list[WatchRow]:
        """Every watch still under way, whoever holds it, oldest first."""
        query = (
            select(WatchRow)
            .where(WatchRow.state == WatchState.WATCHING)
            .order_by(WatchRow.started_at)
        )
        with self.db.session() as s:
            return list(s.scalars(query))

    def of(self, env: str, endpoint: str, limit: int = 20) -> list[WatchRow]:
        """The endpoint's watches, newest first."""
        query = (
            select(WatchRow)
            .where(WatchRow.env == env, WatchRow.endpoint == endpoint)
            .order_by(WatchRow.started_at.desc())
            .limit(limit)
        )
        with self.db.session() as s:
            return list(s.scalars(query))

    def claim(self, owner: str, *, lease_s: float, fronts: frozenset[str]) -> list[WatchRow]:
        """Every watch under way of `fronts` that `owner` holds, after taking those nobody
        holds and renewing its own leases. Each free one is taken with one conditional
        UPDATE: when processes reach for it together, exactly one gets it."""
        now = self.db.now()
        until = now + timedelta(seconds=lease_s)
        of_fronts = WatchRow.front.in_(sorted(fronts))
        mine = (WatchRow.owner == owner, WatchRow.state == WatchState.WATCHING)
        with self.db.session() as s:
            free = list(s.scalars(select(WatchRow.id).where(self._free(now), of_fronts)))
            held = s.scalar(select(WatchRow.id).where(*mine).limit(1))
        if not free and held is None:
            return []  # nothing written: an idle round takes no write lock from the acks
        for watch_id in free:  # each taken on its own: another process may take some
            leased.take(
                self.db.session,
                WatchRow,
                [watch_id],
                free=self._free(now),
                values={"owner": owner, "lease_expires_at": until},
            )
        with self.db.session() as s:
            s.execute(
                update(WatchRow)
                .where(*mine)
                .values(lease_expires_at=until)
                .execution_options(synchronize_session=False)
            )
            return list(s.scalars(select(WatchRow).where(*mine).order_by(WatchRow.started_at)))

    def update(self, watch_id: str, owner: str, **values: Any) -> bool:
        """Change a watch `owner` holds and that is still under way; False when it is not."""
        with self.db.session() as s:
            changed = s.execute(
                update(WatchRow)
                .where(
                    WatchRow.id == watch_id,
                    WatchRow.owner == owner,
                    WatchRow.state == WatchState.WATCHING,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return getattr(changed, "rowcount", 0) == 1

    def finish(self, watch_id: str, owner: str, state: WatchState, detail: str = "") -> bool:
        """End a watch `owner` holds; False when it no longer does (another process took it
        over, or it ended): then that one decides what follows, not this one."""
        return self.update(
            watch_id,
            owner,
            state=state,
            detail=detail,
            finished_at=self.db.now(),
            lease_expires_at=None,
        )

    def note(self, watch_id: str, state: WatchState, detail: str) -> None:
        """Correct how a watch this process ended ended (a rollback that could not be had)."""
        with self.db.session() as s:
            row = s.get(WatchRow, watch_id)
            if row is not None:
                row.state, row.detail = state, detail

    def let_lapse(self, owner: str) -> int:
        """End `owner`'s leases on the watches it holds now (its process stopped or died),
        so another process takes them at once; how many (see `core.execution.leases.let_lapse`)."""
        mine = (WatchRow.owner == owner, WatchRow.state == WatchState.WATCHING)
        return leased.let_lapse(self.db.session, WatchRow, mine=mine, now=self.db.now())

    def _free(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            WatchRow.state == WatchState.WATCHING,
            or_(
                WatchRow.owner == "",
                WatchRow.lease_expires_at.is_(None),
                WatchRow.lease_expires_at < self.db.comparable(now),
            ),
        )

    # -- endpoints down outside a rollout --------------------------------------------------
    def announce_down(
        self, env: str, endpoint: str, *, front: str, version: int, owed: OwedRow | None = None
    ) -> bool:
        """Whether this caller is the one to announce the endpoint down to `front` (True
        once per outage, whichever process asks); `owed` (the announcement) is recorded
        with it, or not at all."""
        try:
            with self.db.session(conflicts=True) as s:
                s.add(
                    DownRow(
                        env=env,
                        endpoint=endpoint,
                        front=front,
                        version=version,
                        since=self.db.now(),
                        where={},
                    )
                )
                if owed is not None:
                    s.add(owed)
        except IntegrityError:
            return False
        return True

    def shown_down(self, env: str, endpoint: str, *, front: str, where: Mapping[str, Any]) -> None:
        """Where the announcement was shown (to take its button away later)."""
        with self.db.session() as s:
            row = s.get(DownRow, (env, endpoint, front))
            if row is not None:
                row.where = dict(where)

    def downs(self, front: str) -> list[DownRow]:
        """The endpoints announced down to `front` and not yet up again."""
        with self.db.session() as s:
            return list(s.scalars(select(DownRow).where(DownRow.front == front)))

    def up_again(
        self,
        env: str,
        endpoint: str,
        *,
        front: str,
        owe: Callable[[DownRow], OwedRow] | None = None,
    ) -> DownRow | None:
        """Forget an outage (the endpoint is up, or changed): the row, when this caller
        removed it; what `owe` makes of it (its end, told) is recorded in the same
        transaction."""
        with self.db.session() as s:
            row = s.get(DownRow, (env, endpoint, front))
            if row is None:
                return None
            gone = s.execute(
                delete(DownRow).where(
                    DownRow.env == env, DownRow.endpoint == endpoint, DownRow.front == front
                )
            )
            if getattr(gone, "rowcount", 0) != 1:
                return None
            if owe is not None:
                s.add(owe(row))
            return row
