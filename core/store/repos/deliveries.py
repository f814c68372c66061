"""Requests a front has handed on (Slack: trigger or action ids), so a retried delivery of
the same request, to this front or another sharing the database, is not handed on again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from core.store.db import Database
from core.store.models import DeliveryRow

KEEP_S = 24 * 3600.0  # longer than any platform retries a delivery
KEY_CHARS = 255


class DeliveryRepository:
    def __init__(self, db: Database, *, keep_s: float = KEEP_S) -> None:
        self.db = db
        self.keep_s = keep_s
        self._swept_at: datetime | None = None

    def first(self, key: str) -> bool:
        """True only for the first of any number of calls with `key`, from any process
        (the primary key decides). Keys older than `keep_s` are forgotten."""
        now = self.db.now()
        try:
            with self.db.session(conflicts=True) as s:
                s.add(DeliveryRow(key=key[:KEY_CHARS], at=now))
        except IntegrityError:
            return False
        # now and then, not on every request: a twenty-fourth of the keeping time apart
        if self._swept_at is None or now - self._swept_at > timedelta(seconds=self.keep_s / 24):
            self._swept_at = now
            self.forget_before(now - timedelta(seconds=self.keep_s))
        return True

    def forget_before(self, moment: datetime) -> int:
        """Forget the keys handed on before `moment`; how many were forgotten."""
        with self.db.session() as s:
            gone = s.execute(delete(DeliveryRow).where(DeliveryRow.at < self.db.comparable(moment)))
            return int(getattr(gone, "rowcount", 0))
