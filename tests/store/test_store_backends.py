"""The store on both of its databases: SQLite (embedded default) and PostgreSQL (replicas).

Every test runs once per backend on a database of its own (a file; a fresh schema), made by
the migrations. PostgreSQL tests skip when no server answers (see tests/db.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from core import migrate
from core.errors import StoreError
from core.store import ApprovalRow, Base, OperationState, Store

KOLKATA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK = timezone(timedelta(hours=-5))


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
    migrate.upgrade(url)
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
    """What Store(url) made before there were migrations: create_all of the first tables."""
    tables = [Base.metadata.tables[name] for name in migrate.PRE_MIGRATION_TABLES]
    Base.metadata.create_all(engine, tables=tables)


def test_upgrading_a_current_database_changes_nothing(store: Store, url: str) -> None:
    op = store.enqueue(
        kind="deploy", env="dev", endpoint="iris", requested_by="U1", command="/deploy iris"
    )
    for _ in range(2):
        migrate.upgrade(url)
        Store(url).engine.dispose()
    assert migrate.current(url) == migrate.head()
    with store.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    assert store.operation(op.id) is not None


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
    store = Store(url)
    old = store.operation("op-old")
    store.engine.dispose()
    assert old is not None
    assert old.remote == {"build": "b-1"}
    assert (old.state, old.plan, old.attempts, old.owner) == ("succeeded", {}, 0, "")


def test_a_partial_database_is_refused_with_what_is_missing(url: str, engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[Base.metadata.tables["endpoints"]])
    with pytest.raises(StoreError, match="operations, events, audit, approvals"):
        migrate.upgrade(url)


def test_a_database_from_a_newer_bot_is_refused(store: Store, url: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision 9999, which this version of the bot"):
        migrate.upgrade(url)


def test_bots_starting_together_all_come_up_on_one_schema(url: str, engine: Engine) -> None:
    with ThreadPoolExecutor(4) as pool_:
        list(pool_.map(migrate.upgrade, [url] * 4))
    assert migrate.current(url) == migrate.head()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1


# -- store behaviour -------------------------------------------------------------------------
def endpoint_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "env": "dev",
        "name": "iris",
        "target": "local",
        "model": "iris",
        "version": 1,
        "cpu": 1.0,
        "memory_mb": 1024,
        "replicas": 1,
        "url": "http://127.0.0.1:9000",
        "deployment": "d-1",
    }
    return {**fields, **overrides}


def test_endpoints_upsert_on_env_and_name(store: Store) -> None:
    store.save_endpoint(**endpoint_fields())
    store.save_endpoint(**endpoint_fields(version=2, cpu=0.5, deployment="d-2"))
    store.save_endpoint(**endpoint_fields(env="prod", gpus=1))

    dev = store.endpoint("dev", "iris")
    assert dev is not None
    assert (dev.version, dev.cpu, dev.deployment, dev.gpus) == (2, 0.5, "d-2", 0)
    assert [(e.env, e.name) for e in store.endpoints()] == [("dev", "iris"), ("prod", "iris")]
    assert [e.gpus for e in store.endpoints("prod")] == [1]
    assert store.endpoint("staging", "iris") is None


def test_operations_and_events_round_trip_in_order(store: Store) -> None:
    first = store.enqueue(
        kind="deploy", env="dev", endpoint="iris", requested_by="U1", command="/deploy iris v2"
    )
    second = store.enqueue(
        kind="scale", env="dev", endpoint="iris", requested_by="U2", command="/scale iris 2cpu"
    )
    store.record(first.id, step="build", build_id="b-1")
    store.record(first.id, step="deploy", deployment_id="d-7", note={"häß": ["ü", 1]})
    messages = [f"step {i}: ✓ “quoted” 'single' ; DROP TABLE events" for i in range(12)]
    for i, message in enumerate(messages):
        store.add_event(first.id if i % 3 else second.id, "progress", f"s{i}", message)
    store.finish(first.id, OperationState.SUCCEEDED)
    store.finish(second.id, OperationState.FAILED, "build failed: out of memory")

    op = store.operation(first.id)
    assert op is not None
    assert (op.state, op.step, op.error) == ("succeeded", "deploy", "")
    assert op.remote == {"build_id": "b-1", "deployment_id": "d-7", "note": {"häß": ["ü", 1]}}
    assert op.finished_at is not None
    failed = store.operation(second.id)
    assert failed is not None
    assert (failed.state, failed.error) == ("failed", "build failed: out of memory")
    assert [e.message for e in store.events(first.id)] == [
        m for i, m in enumerate(messages) if i % 3
    ]
    assert [e.step for e in store.events(second.id)] == ["s0", "s3", "s6", "s9"]
    assert [o.id for o in store.operations()] == [second.id, first.id]
    assert store.operation("op-none") is None


@pytest.mark.parametrize("round_", range(3))
def test_one_of_eight_simultaneous_decisions_wins(store: Store, round_: int) -> None:
    now = datetime.now(UTC)
    approval = store.add_approval(
        ApprovalRow(
            id=f"ap-{round_}",
            model="iris",
            version=3,
            env="prod",
            requester_id="U1",
            requester_name="dev",
            expires_at=now + timedelta(hours=1),
            where={},
        )
    )
    start = threading.Barrier(8)

    def click(n: int) -> bool:
        start.wait()
        state = "approved" if n % 2 else "rejected"
        return store.decide_approval(approval.id, state=state, by=f"admin-{n}", reason=str(n))

    with ThreadPoolExecutor(8) as pool_:
        results = list(pool_.map(click, range(8)))

    assert results.count(True) == 1
    winner = results.index(True)
    decided = store.approval(approval.id)
    assert decided is not None
    assert (decided.decided_by, decided.decision_reason) == (f"admin-{winner}", str(winner))
    assert decided.state == ("approved" if winner % 2 else "rejected")
    assert store.decide_approval(approval.id, state="approved", by="late", reason="") is False


def audit(store: Store, at: datetime, endpoint: str = "iris") -> None:
    store.audit(
        at=at,
        actor_id="U1",
        actor_name="ana",
        action="deploy",
        command=f"/deploy {endpoint}",
        env="prod",
        endpoint=endpoint,
        outcome="allowed",
        detail=at.isoformat(),
    )


def instant(moment: datetime) -> datetime:
    """The same instant, comparable whatever the backend returned (SQLite: naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@pytest.mark.parametrize("url", ["sqlite", "postgresql", "postgresql-kolkata"], indirect=True)
def test_audit_is_newest_first_and_since_counts_instants(store: Store) -> None:
    base = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    for hours, endpoint in [(0, "iris"), (1, "iris"), (2, "wine"), (3, "iris"), (3, "iris")]:
        audit(store, base + timedelta(hours=hours), endpoint)

    every = store.audit_entries()
    assert [instant(e.at) for e in every] == [base + timedelta(hours=h) for h in (3, 3, 2, 1, 0)]
    assert every[0].id > every[1].id  # same moment: the later write first
    assert len(store.audit_entries(limit=2)) == 2
    assert {e.endpoint for e in store.audit_entries(endpoint="wine")} == {"wine"}

    # one instant, three spellings: 10:00 UTC == 15:30 in Kolkata == 05:00 in New York
    for since in (
        base + timedelta(hours=1),
        datetime(2026, 11, 1, 15, 30, tzinfo=KOLKATA),
        datetime(2026, 11, 1, 5, 0, tzinfo=NEW_YORK),
    ):
        found = store.audit_entries(since=since)
        assert [instant(e.at) for e in found] == [base + timedelta(hours=h) for h in (3, 3, 2, 1)]
    assert store.audit_entries(since=base + timedelta(hours=3, seconds=1)) == []

    # entries stamped by the store itself (now, in UTC) against a `since` in another zone
    audit_now = datetime.now(UTC)
    store.audit(
        actor_id="U2",
        actor_name="bo",
        action="scale",
        command="/scale iris",
        env="prod",
        endpoint="iris",
        outcome="refused",
    )
    recent = store.audit_entries(since=(audit_now - timedelta(minutes=1)).astimezone(NEW_YORK))
    assert [e.actor_id for e in recent] == ["U2"]
    assert abs(instant(recent[0].at) - audit_now) < timedelta(minutes=1)
