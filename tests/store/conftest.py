"""Each store test gets a database of its own per backend, made by the migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, pool

from core import migrate
from core.store import Store
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
def store(url: str) -> Iterator[Store]:
    migrate.upgrade(url)  # explicit, so these tests cover the migrations whatever Store does
    store = Store(url)
    yield store
    store.engine.dispose()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = create_engine(url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()
