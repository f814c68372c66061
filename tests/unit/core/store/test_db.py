"""The state database on both of its backends: SQLite (embedded default) and PostgreSQL
(replicas): the migrations make exactly the models' schema, and opening it migrates.

Every test runs once per backend on a database of its own (a file; a fresh schema), made by
the migrations. PostgreSQL tests skip when no server answers (see tests/db.py).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from core.errors import StoreError
from core.store import migrate
from core.store.db import Database
from core.store.models import Base
from core.store.repos import Repositories
from tests.db import postgres_schema


def schema(engine: Engine) -> dict[str, Any]:
    """Tables, columns (type as the database spells it), keys and indexes, to compare."""
    found = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], c["type"].compile(engine.dialect), c["nullable"])
                for c in found.get_columns(table)
            ],
            "primary_key": found.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": [
                (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"])
                for fk in found.get_foreign_keys(table)
            ],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(table)
            ),
        }
        for table in sorted(set(found.get_table_names()) - {"alembic_version"})
    }


# -- migrations ------------------------------------------------------------------------------
def test_migrations_make_exactly_the_models_schema(url: str, engine: Engine) -> None:
    assert migrate.current(url) is None
    migrate.upgrade(url, replay=True)  # every migration in turn, as an older database meets them
    assert migrate.current(url) == migrate.head()

    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    migrated = schema(engine)
    assert set(migrated) == set(Base.metadata.tables)

    # and what create_all makes, column for column and index for index
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    assert schema(engine) == migrated

    if engine.dialect.name == "postgresql":
        columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("approvals")}
        assert columns["created_at"].compile(engine.dialect) == "TIMESTAMP WITH TIME ZONE"
        assert columns["where"].compile(engine.dialect) == "JSON"
        assert columns["requester_name"].compile(engine.dialect) == "VARCHAR(256)"


def test_the_first_revision_is_what_create_all_made_before_migrations(
    url: str, engine: Engine
) -> None:
    config = migrate.alembic_config(url)  # env.py on its own, as the alembic command runs it
    command.upgrade(config, "head")
    command.downgrade(config, migrate.ADOPTED_REVISION)
    assert migrate.current(url) == migrate.ADOPTED_REVISION
    first = schema(engine)

    command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    create_all_before_migrations(engine)
    assert set(first) == set(migrate.PRE_MIGRATION_TABLES)
    # the models of these tables changed later (0003), so today's create_all differs there
    unchanged = set(first) - {"operations", "endpoints"}
    now = schema(engine)
    assert {t: now[t] for t in unchanged} == {t: first[t] for t in unchanged}


def create_all_before_migrations(engine: Engine) -> None:
    """What opening the database made before there were migrations: create_all of the first
    tables."""
    tables = [Base.metadata.tables[name] for name in migrate.PRE_MIGRATION_TABLES]
    Base.metadata.create_all(engine, tables=tables)


def test_upgrading_a_current_database_changes_nothing(repos: Repositories, url: str) -> None:
    op = repos.operations.enqueue(
        kind="deploy", env="dev", endpoint="iris", requested_by="U1", command="/deploy iris"
    )
    for _ in range(2):
        migrate.upgrade(url)
        Database(url).close()
    assert migrate.current(url) == migrate.head()
    with repos.db.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    assert repos.operations.get(op.id) is not None


def test_a_database_made_by_create_all_is_adopted(url: str, engine: Engine) -> None:
    # the schema create_all made then is revision 0001 (the test above), without its stamp
    command.upgrade(migrate.alembic_config(url), migrate.ADOPTED_REVISION)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(
            text(
                "INSERT INTO operations (id, kind, env, endpoint, requested_by, command, state,"
                " step, remote, error, created_at) VALUES ('op-old', 'deploy', 'dev', 'iris',"
                " 'U1', '/deploy iris v1', 'succeeded', 'switch', '{\"build\": \"b-1\"}', '',"
                " CURRENT_TIMESTAMP)"
            )
        )
    assert migrate.current(url) is None

    migrate.upgrade(url)
    migrate.upgrade(url)

    assert migrate.current(url) == migrate.head()
    assert set(inspect(engine).get_table_names()) == {"alembic_version", *Base.metadata.tables}
    repos = Repositories.open(url)
    old = repos.operations.get("op-old")
    repos.close()
    assert old is not None
    assert old.remote == {"build": "b-1"}
    assert (old.state, old.brief, old.attempts, old.owner) == ("succeeded", {}, 0, "")


def test_a_partial_database_is_refused_with_what_is_missing(url: str, engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[Base.metadata.tables["endpoints"]])
    with pytest.raises(StoreError, match="operations, events, audit, approvals"):
        migrate.upgrade(url)


def test_a_database_from_a_newer_bot_is_refused(repos: Repositories, url: str) -> None:
    with repos.db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision 9999, which this version of the bot"):
        migrate.upgrade(url)


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    assert migrate.head() == migrate._alembic_head()


def test_a_process_that_opens_a_current_database_never_loads_alembic(url: str) -> None:
    # a Slack front: the database is migrated apart (in a child process) when it is new,
    # and opening it then reads its revision with one query
    said = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from core.store import migrate; from core.store.db import Database;"
            "migrate.upgrade_apart(sys.argv[1]); Database(sys.argv[1]);"
            "print(migrate.current(sys.argv[1]), sorted("
            "m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(maxsplit=1)
    assert said == [migrate.head(), "[]\n"]


def test_a_database_that_cannot_be_migrated_apart_says_why(repos: Repositories, url: str) -> None:
    with repos.db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision 9999, which this version"):
        migrate.upgrade_apart(url)


def test_bots_starting_together_all_come_up_on_one_schema(url: str, engine: Engine) -> None:
    with ThreadPoolExecutor(4) as pool_:
        list(pool_.map(migrate.upgrade, [url] * 4))
    assert migrate.current(url) == migrate.head()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1


def test_a_database_that_fails_is_a_store_error_naming_no_address(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'chatops.db'}"
    db = Database(url)  # makes the folder, then the schema
    assert migrate.current(url) == migrate.head()
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE endpoints"))
    with pytest.raises(StoreError) as failed, db.session() as s:
        s.execute(text("SELECT * FROM endpoints"))
    assert failed.value.message == "the state database failed: OperationalError"
    assert str(tmp_path) not in str(failed.value)
    db.close()


def test_postgresql_connections_give_up_after_a_timeout() -> None:
    with postgres_schema() as url:
        db = Database(url)
        assert db.engine.url.query["connect_timeout"] == "5"
        db.close()


def test_an_unreachable_postgresql_is_a_store_error_without_its_password() -> None:
    address = "postgresql+psycopg://chatops:s3cret-pw@127.0.0.1:1/chatops"
    with pytest.raises(StoreError) as failed:
        Database(address)
    assert "s3cret-pw" not in str(failed.value)


def test_an_operation_recorded_before_0008_keeps_its_job_and_its_cancel(
    url: str, engine: Engine
) -> None:
    config = migrate.alembic_config(url)
    command.upgrade(config, "0007_watches")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO operations (id, kind, env, endpoint, requested_by, command, state,"
                " step, remote, error, created_at, plan, reply_to, lock_token, front, owner,"
                " attempts) VALUES ('op-1', 'deploy', 'dev', 'iris', 'U1', '/deploy iris v1',"
                " 'running', '', :remote, '', CURRENT_TIMESTAMP, '{}', :reply_to, '', 'slack',"
                " '', 1)"
            ),
            {"remote": '{"cancelled_by": "bob"}', "reply_to": '{"front": "slack", "job": "job-9"}'},
        )
    migrate.upgrade(url)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT job_id, cancelled_by FROM operations WHERE id = 'op-1'")
        ).one()
    assert tuple(row) == ("job-9", "bob")
