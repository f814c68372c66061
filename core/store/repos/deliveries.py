"""Requests a front has handed on (Slack: trigger or action ids), so a retried delivery of
the same request, to this front or another sharing the database, is not handed on again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from core.store.db import Database
from core.store.models import KEEP_DONE_S, DeliveryRow
from core.store.retention import Retention

KEY_CHARS = 255


class DeliveryRepository:
    def __init__(self, db: Database, *, keep_s: float = KEEP_DONE_S) -> None:
        self.db = db
        self.retention = Retention(keep_s)  # longer than any platform retries a delivery

    def first(self, key: str) -> bool:
        """True only for the first of any number of calls with `key`, from any process
        (the primary key decides). Keys older than `keep_s` are forgotten, now and then."""
        now = self.db.now()
        try:
            with self.db.session(conflicts=True) as s:
                s.add(DeliveryRow(key=key[:KEY_CHARS], at=now))
        except IntegrityError:
            return False
        if (before := self.retention.due(now)) is not None:
            self.forget_before(before)
        return True

    def forget_before(self, moment: datetime) -> int:
        """Forget the keys handed on before `moment`; how many were forgotten."""
        with self.db.session() as s:
            gone = s.execute(delete(DeliveryRow).where(DeliveryRow.at < self.db.comparable(moment)))
            return int(getattr(gone, "rowcount", 0))
