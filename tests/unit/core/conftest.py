"""Each test of the state database gets a database of its own per backend, made by the
migrations, and a clock it moves by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool

from core.store import migrate
from core.store.repos import Repositories
from tests.clock import FakeClock
from tests.db import postgres_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own on each backend ("postgresql-kolkata": a session time
    zone that is not the server's)."""
    if request.param == "sqlite":
        (tmp_path / "state").mkdir()
        yield f"sqlite:///{tmp_path / 'state' / 'chatops.db'}"
    elif request.param == "postgresql-kolkata":
        with postgres_schema(settings={"timezone": "Asia/Kolkata"}) as schema_url:
            yield schema_url
    else:
        with postgres_schema() as schema_url:
            yield schema_url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def repos(url: str, clock: FakeClock) -> Iterator[Repositories]:
    migrate.upgrade(url, replay=True)  # explicit: these tests cover the migrations themselves
    repos = Repositories.open(url, clock=clock)
    yield repos
    repos.close()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()
