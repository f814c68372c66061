"""The schema of the state database, kept by Alembic migrations (core/store/migrations/versions).

`upgrade` brings a database to the newest revision: a new one gets every table, a current
one is left alone, and one that `create_all` made before there were migrations is adopted
(stamped 0001) instead of created again. Bot processes starting together against one
database take turns: the migration runs in one transaction that first takes a lock (an
advisory lock on PostgreSQL, the write lock on SQLite), so the later ones find it done.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, pool, text
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
ADOPTED_REVISION = "0001"
# what create_all made before migrations: a database holding these is at ADOPTED_REVISION
PRE_MIGRATION_TABLES = ("endpoints", "operations", "events", "audit", "approvals")
_PG_LOCK_KEY = 0x63686F7073  # "chops": the advisory lock that serialises migrations


_ALEMBIC = threading.Lock()


def exclusive() -> threading.Lock:
    """Held while alembic runs in this process (ours, or MLflow's on a database-backed
    registry): alembic keeps the migration under way in module globals."""
    return _ALEMBIC


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """Alembic's configuration for `url`, built in code: no alembic.ini is needed."""
    config = Config()
    # ConfigParser interpolates %; percent-encoded passwords must survive it
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # a drafted revision (command.revision) comes out in the house format
    for option, value in {
        "hooks": "ruff",
        "ruff.type": "module",
        "ruff.module": "ruff",
        "ruff.options": "format REVISION_SCRIPT_FILENAME",
    }.items():
        config.set_section_option("post_write_hooks", option, value)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    """The newest revision this version of the bot knows."""
    revision = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert revision is not None
    return revision


def prepare(url: str) -> None:
    """Make the folder of a SQLite database file, so opening it can create the file."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str) -> None:
    """Migrate the database at `url` to `head()`; nothing happens when it is there already.

    Raises StoreError when the database cannot be reached or migrated, or when a newer bot
    has migrated it past what this one knows.
    """
    engine = _migration_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                )
            revision = _revision(connection)
            if revision == head():
                return
            config = alembic_config(url, connection)
            # alembic keeps the migration under way in module globals: one at a time here
            with _ALEMBIC:
                if revision is None and _adoptable(connection):
                    command.stamp(config, ADOPTED_REVISION)
                command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"could not migrate the state database: {type(exc).__name__}") from exc
    except CommandError as exc:
        raise StoreError(f"could not migrate the state database: {exc}") from exc
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None when it has none (new, or pre-migration)."""
    database = make_url(url)
    if database.get_backend_name() == "sqlite" and not Path(database.database or "").exists():
        return None
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the state database: {type(exc).__name__}") from exc
    finally:
        engine.dispose()


def is_empty(url: str) -> bool:
    """Whether the database at `url` holds no table at all (a SQLite file not made yet
    counts): a new database, which `upgrade` fills, rather than one made otherwise."""
    database = make_url(url)
    if database.get_backend_name() == "sqlite" and not Path(database.database or "").exists():
        return True
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names()
    except SQLAlchemyError as exc:
        raise StoreError(f"could not read the state database: {type(exc).__name__}") from exc
    finally:
        engine.dispose()


def _engine(url: str) -> Engine:
    database = make_url(url)
    if database.get_backend_name() == "sqlite" and database.database in (None, "", ":memory:"):
        raise StoreError("an in-memory SQLite database cannot be migrated: give it a file")
    try:
        return create_engine(database, poolclass=pool.NullPool)
    except ImportError as exc:
        raise StoreError(f"the database driver for {database.drivername} is missing") from exc


def _migration_engine(url: str) -> Engine:
    engine = _engine(url)
    if engine.dialect.name == "sqlite":
        # pysqlite starts transactions lazily and runs DDL outside them; take the write lock
        # up front instead, so the migration is one transaction and a second process waits
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA busy_timeout = 30000")  # another bot may be migrating


def _sqlite_begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _revision(connection: Connection) -> str | None:
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is not None and revision != head():
        try:
            ScriptDirectory.from_config(alembic_config("")).get_revision(revision)
        except CommandError as exc:
            raise StoreError(
                f"the state database is at revision {revision}, which this version of the bot"
                " does not know: a newer version has migrated it"
            ) from exc
    return revision


def _adoptable(connection: Connection) -> bool:
    """True for a database that create_all made; False for an empty one."""
    present = set(inspect(connection).get_table_names()) & set(PRE_MIGRATION_TABLES)
    if not present:
        return False
    missing = [name for name in PRE_MIGRATION_TABLES if name not in present]
    if missing:
        raise StoreError(
            "the state database has some of the bot's tables but not "
            + ", ".join(missing)
            + ": it was not made by this bot, or only partly; move it aside and start afresh"
        )
    return True
