"""The state database: one engine, sessions that commit or roll back as a whole, the schema
brought to the newest migration on open (SQLAlchemy; SQLite by default, PostgreSQL for
several bots). Errors of SQLAlchemy and the drivers leave here as `StoreError`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.clock import SYSTEM_CLOCK, Clock
from core.errors import StoreError
from core.store import intake, migrate
from core.store.models import aware

__all__ = ["Database", "aware", "failed"]

# a database that stops answering must not hang an ack or a lease heartbeat
PG_CONNECT_TIMEOUT_S = 5


class Database:
    def __init__(
        self,
        url: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        schema: Callable[[str], None] = migrate.upgrade,
    ) -> None:
        """Open (and migrate) the database at `url`; `clock` decides every "now" stored.
        `schema` brings it to the schema this version needs (the state database's Alembic
        migrations, unless told otherwise)."""
        migrate.prepare(url)
        address = make_url(url)
        if address.get_backend_name() == "postgresql" and "connect_timeout" not in address.query:
            address = address.update_query_dict({"connect_timeout": str(PG_CONNECT_TIMEOUT_S)})
        self.url = url
        self.clock = clock
        self.engine: Engine = create_engine(address, json_serializer=json.dumps)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        elif self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "connect", _postgres_utc)
        schema(url)  # the schema comes from the migrations, on every backend
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # the transaction this thread has open on this database, joined by nested sessions
        self._current: ContextVar[Session | None] = ContextVar(f"session-{id(self)}", default=None)
        self._intake: Database | None = None
        self._intake_guard = threading.Lock()

    def intake(self) -> Database:
        """Where the jobs fronts record before they ack live (`core.store.intake`): on SQLite
        a file of its own next to this one, opened (and made) the first time it is asked
        for; on other backends this database."""
        with self._intake_guard:
            if self._intake is None:
                url = intake.url_of(self.url)
                self._intake = (
                    self if url is None else Database(url, clock=self.clock, schema=intake.prepare)
                )
            return self._intake

    @contextmanager
    def session(self, *, conflicts: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises. With
        `conflicts`, a key conflict leaves as SQLAlchemy's IntegrityError, for the caller to
        tell "someone else was first" from a failure.

        Opened inside another session of this database (in the same thread), it is part of
        that one: what several repositories write together (an operation's end, its lock,
        its audit row, what it owes people) commits or rolls back as one."""
        outer = self._current.get()
        if outer is not None:
            yield outer
            return
        try:
            with self._sessions.begin() as session:
                mark = self._current.set(session)
                try:
                    yield session
                finally:
                    self._current.reset(mark)
        except IntegrityError as exc:
            if conflicts:
                raise
            raise failed(exc) from exc
        except SQLAlchemyError as exc:
            raise failed(exc) from exc

    def now(self) -> datetime:
        return self.clock.now()

    def comparable(self, moment: datetime) -> datetime:
        """`moment` as this backend compares it: SQLite keeps no time zone (rows hold naive
        UTC), PostgreSQL compares instants."""
        if self.engine.dialect.name == "sqlite" and moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment

    def close(self) -> None:
        if self._intake is not None and self._intake is not self:
            self._intake.close()
        self.engine.dispose()


def failed(exc: SQLAlchemyError) -> StoreError:
    """The error to raise for `exc`: its kind only, since driver texts may carry the URL."""
    return StoreError(f"the state database failed: {type(exc).__name__}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # with WAL this cannot corrupt the database; a power cut may lose the last commits
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _postgres_utc(dbapi_connection: Any, _record: Any) -> None:
    # times are read back in UTC, as every text says them, whatever time zone the session
    # had (the server's default, or the URL's options)
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.autocommit = autocommit
