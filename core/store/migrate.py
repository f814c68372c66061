"""The schema of the state database, kept by Alembic migrations (core/store/migrations/versions).

`upgrade` brings a database to the newest revision: a new one gets every table, a current
one is left alone, and one that `create_all` made before there were migrations is adopted
(stamped 0001) instead of created again. Bot processes starting together against one
database take turns: the migration runs in one transaction that first takes a lock (an
advisory lock on PostgreSQL, the write lock on SQLite), so the later ones find it done.

Alembic (with Mako, 12 MB) is loaded only when a database is not at `head()`: a process
that opens a current one (a Slack front, a restarted bot) reads the revision with one query.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, pool, text
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # alembic's own: one row, the revision the database is at
# how each revision file names itself and the one it follows (the house template's lines)
_REVISION = re.compile(r'^revision: str = "([^"]+)"$', re.M)
_REVISES = re.compile(r'^down_revision: str \| None = (?:"([^"]+)"|None)$', re.M)
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
    from alembic.config import Config

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
    """The newest revision this version of the bot knows: the one no other revises, read
    from the revision files (alembic's own answer when they are not one plain line)."""
    revises: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        source = path.read_text(encoding="utf-8")
        named, follows = _REVISION.search(source), _REVISES.search(source)
        if named is None or follows is None:
            return _alembic_head()
        revises[named.group(1)] = follows.group(1)
    heads = set(revises) - set(revises.values())
    if len(heads) != 1:
        return _alembic_head()
    return heads.pop()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert revision is not None
    return revision


def prepare(url: str) -> None:
    """Make the folder of a SQLite database file, so opening it can create the file."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, *, replay: bool = False) -> None:
    """Migrate the database at `url` to `head()`; nothing happens when it is there already.
    An empty one gets the models' tables at once, stamped `head()` (Alembic's own advice for
    a database built from scratch: half a second sooner than every migration in turn, which
    make the same schema, as tests/unit/core/store/test_db.py checks); with `replay`, it
    gets every migration in turn all the same.

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
            if revision is None and not replay and not inspect(connection).get_table_names():
                _create(connection)
            elif revision != head():
                _migrate(url, connection, adopt=revision is None)
    except SQLAlchemyError as exc:
        raise StoreError(f"could not migrate the state database: {type(exc).__name__}") from exc
    finally:
        engine.dispose()


def _create(connection: Connection) -> None:
    """The models' tables and Alembic's record that they are at `head()`, as `alembic stamp`
    writes it, in the caller's transaction."""
    from core.store.models import Base

    Base.metadata.create_all(connection)
    connection.execute(
        text(
            f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
            f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES (:head)"), {"head": head()})


def _migrate(url: str, connection: Connection, *, adopt: bool) -> None:
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(url, connection)
    try:
        # alembic keeps the migration under way in module globals: one at a time here
        with _ALEMBIC:
            if adopt and _adoptable(connection):
                command.stamp(config, ADOPTED_REVISION)
            command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(f"could not migrate the state database: {exc}") from exc


def upgrade_apart(url: str, meanwhile: Callable[[], object] = lambda: None) -> None:
    """`upgrade`, run in a child process when the database is not at `head()`, while this
    one does `meanwhile`: a long-running process that only reads and writes rows (a Slack
    front) never loads Alembic. The same errors as `upgrade`."""
    import subprocess
    import sys

    try:
        if current(url) == head():
            meanwhile()
            return
    except StoreError:
        pass  # the child says why, as `upgrade` would
    # the URL (it may hold a password) goes over stdin, never on a command line
    child = subprocess.Popen(
        [sys.executable, "-c", f"import sys; from {__name__} import main; main(sys.stdin.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(url)
    child.stdin.close()
    try:
        meanwhile()
    finally:
        said = child.stdout.read()  # a line, only when it failed
        child.wait()
    if child.returncode != 0:
        lines = said.strip().splitlines()
        raise StoreError(lines[-1] if lines else "could not migrate the state database")


def main(url: str) -> None:
    """`upgrade_apart`'s child: migrates; on failure prints why and exits 1."""
    import sys

    try:
        prepare(url)
        upgrade(url)
    except StoreError as exc:
        print(exc.message)
        sys.exit(1)


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None when it has none (new, or pre-migration)."""
    database = make_url(url)
    if database.get_backend_name() == "sqlite" and not Path(database.database or "").exists():
        return None
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return _stamped(connection)
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


def _stamped(connection: Connection) -> str | None:
    """The revision the database says it is at (None: not stamped); alembic's answer when
    its table holds anything but one row."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(rows) == 1:
        return str(rows[0][0])
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _revision(connection: Connection) -> str | None:
    revision = _stamped(connection)
    if revision is not None and revision != head():
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

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
