"""The registry events the bot has seen, one row each under a unique key, so that any number
of bot processes seeing one event (from a webhook, or each polling) announce it once.

An alias or a tag may change again and again: each change is the next in its subject's
sequence, keyed by that number and what it became. Two processes seeing the same change
compute the same key and only one insert wins; seeing what is already the latest state is
no change at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.registry.events import RegistryEvent
from core.store.db import Database
from core.store.models import OwedRow, RegistryEventRow

# the row that says the registry's state was taken in once (so polling announces only news)
BASELINE = "baseline"


@dataclass(frozen=True)
class Seen:
    """The latest state of one subject of a model."""

    model: str
    subject: str
    state: str
    seq: int


class RegistryEventRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, event: RegistryEvent, *, source: str, owed: OwedRow | None = None) -> bool:
        """True when this call recorded `event` first (its caller announces it); False when
        it was recorded already, by any process, or is what the subject is already. `owed`
        (its announcement) is recorded with it, in the same transaction, or not at all."""
        with self.db.session() as s:
            latest = s.execute(
                select(RegistryEventRow.state, RegistryEventRow.seq)
                .where(
                    RegistryEventRow.model == event.model,
                    RegistryEventRow.subject == event.subject,
                )
                .order_by(RegistryEventRow.seq.desc(), RegistryEventRow.id.desc())
                .limit(1)
            ).first()
        if latest is not None and latest.state == event.state:
            return False
        seq = 0 if latest is None else latest.seq + 1
        return self._insert(event, seq=seq, source=source, owed=owed)

    def once(
        self,
        *,
        kind: str,
        model: str,
        version: int,
        subject: str,
        state: str,
        source: str,
        owed: OwedRow | None = None,
    ) -> bool:
        """True when this call is the first ever, from any process, to record that `subject`
        of `model` was `state` (its caller announces it); False ever after, whatever it was
        in between. `owed` is recorded with it, in the same transaction, or not at all."""
        row = RegistryEventRow(
            key=_key(model, subject, 0, state),
            kind=kind,
            model=model,
            version=version,
            subject=subject,
            state=state,
            seq=0,
            source=source,
            at=self.db.now(),
        )
        return self._add(row, owed)

    def _insert(
        self, event: RegistryEvent, *, seq: int, source: str, owed: OwedRow | None = None
    ) -> bool:
        row = RegistryEventRow(
            key=_key(event.model, event.subject, seq, event.state),
            kind=str(event.kind),
            model=event.model,
            version=event.version,
            subject=event.subject,
            state=event.state,
            seq=seq,
            source=source,
            at=self.db.now(),
        )
        return self._add(row, owed)

    def _add(self, row: RegistryEventRow, owed: OwedRow | None) -> bool:
        try:
            with self.db.session(conflicts=True) as s:
                s.add(row)
                if owed is not None:
                    s.add(owed)
        except IntegrityError:
            return False
        return True

    def latest(self) -> dict[tuple[str, str], str]:
        """The latest state of every subject seen, by (model, subject)."""
        newest = (
            select(
                RegistryEventRow.model,
                RegistryEventRow.subject,
                func.max(RegistryEventRow.seq).label("seq"),
            )
            .group_by(RegistryEventRow.model, RegistryEventRow.subject)
            .subquery()
        )
        query = select(
            RegistryEventRow.model, RegistryEventRow.subject, RegistryEventRow.state
        ).join(
            newest,
            (RegistryEventRow.model == newest.c.model)
            & (RegistryEventRow.subject == newest.c.subject)
            & (RegistryEventRow.seq == newest.c.seq),
        )
        with self.db.session() as s:
            return {(r.model, r.subject): r.state for r in s.execute(query)}

    def alias_moves(
        self, model: str, alias: str, *, since: datetime, until: datetime
    ) -> list[tuple[datetime, int | None]]:
        """When `@alias` of `model` was seen moved (to a version; None: deleted) between
        `since` and `until`, oldest first."""
        query = (
            select(RegistryEventRow.at, RegistryEventRow.state)
            .where(
                RegistryEventRow.model == model,
                RegistryEventRow.subject == f"alias:{alias}",
                RegistryEventRow.at >= self.db.comparable(since),
                RegistryEventRow.at <= self.db.comparable(until),
            )
            .order_by(RegistryEventRow.at, RegistryEventRow.seq)
        )
        with self.db.session() as s:
            return [(r.at, int(r.state) if r.state.isdigit() else None) for r in s.execute(query)]

    def baselined(self) -> bool:
        """Whether the registry's state was taken in once already (by any process)."""
        with self.db.session() as s:
            found = s.scalar(
                select(RegistryEventRow.id).where(RegistryEventRow.source == BASELINE).limit(1)
            )
        return found is not None

    def mark_baselined(self) -> None:
        row = RegistryEventRow(
            key=_key("", BASELINE, 0, ""),
            kind=BASELINE,
            model="",
            version=0,
            subject=BASELINE,
            state="",
            seq=0,
            source=BASELINE,
            at=self.db.now(),
        )
        try:
            with self.db.session(conflicts=True) as s:
                s.add(row)
        except IntegrityError:
            pass  # another process took it in at the same time

    def count(self, *, source: str | None = None) -> int:
        query = select(func.count(RegistryEventRow.id))
        if source is not None:
            query = query.where(RegistryEventRow.source == source)
        with self.db.session() as s:
            return int(s.scalar(query) or 0)


def _key(model: str, subject: str, seq: int, state: str) -> str:
    # hashed: model names, tag keys and values together outgrow any index's key size
    raw = "\x1f".join((model, subject, str(seq), state))
    return hashlib.sha256(raw.encode()).hexdigest()
