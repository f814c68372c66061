"""The repositories of the state database, one per table family, over one `Database`.

`Repositories.open(url)` opens (and migrates) the database and gives each of them; they
share its engine and its clock. Only the core uses them: fronts go through core services.
"""

from __future__ import annotations

from core.clock import SYSTEM_CLOCK, Clock
from core.store.db import Database
from core.store.models import KEEP_DONE_S
from core.store.repos.approvals import ApprovalRepository
from core.store.repos.audit import AuditRepository
from core.store.repos.deliveries import DeliveryRepository
from core.store.repos.endpoints import EndpointRepository, Serving
from core.store.repos.locks import LockRepository
from core.store.repos.operations import OperationRepository
from core.store.repos.outbox import OutboxRepository
from core.store.repos.registry_events import RegistryEventRepository
from core.store.repos.served import ServedRepository
from core.store.repos.tokens import TokenRepository
from core.store.repos.watches import WatchRepository

__all__ = [
    "ApprovalRepository",
    "AuditRepository",
    "DeliveryRepository",
    "EndpointRepository",
    "LockRepository",
    "OperationRepository",
    "OutboxRepository",
    "RegistryEventRepository",
    "Repositories",
    "ServedRepository",
    "Serving",
    "TokenRepository",
    "WatchRepository",
]


class Repositories:
    def __init__(self, db: Database, *, keep_done_s: float = KEEP_DONE_S) -> None:
        """`keep_done_s`: how long sent outbox rows and remembered deliveries are kept."""
        self.db = db
        self.endpoints = EndpointRepository(db)
        self.operations = OperationRepository(db)
        self.locks = LockRepository(db)
        self.approvals = ApprovalRepository(db)
        self.audit = AuditRepository(db)
        self.deliveries = DeliveryRepository(db, keep_s=keep_done_s)
        self.served = ServedRepository(db)
        self.registry_events = RegistryEventRepository(db)
        self.watches = WatchRepository(db)
        self.outbox = OutboxRepository(db, keep_s=keep_done_s)
        self.tokens = TokenRepository(db)

    @classmethod
    def open(
        cls, url: str, *, clock: Clock = SYSTEM_CLOCK, keep_done_s: float = KEEP_DONE_S
    ) -> Repositories:
        """Open (and migrate) the database at `url`; every "now" is `clock`'s."""
        return cls(Database(url, clock=clock), keep_done_s=keep_done_s)

    @property
    def clock(self) -> Clock:
        return self.db.clock

    def close(self) -> None:
        self.db.close()
