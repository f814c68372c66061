"""PostgreSQL for tests: a server URL, and a fresh schema per test so tests never meet.

`postgres_server_url()` is CHATOPS_TEST_POSTGRES_URL when set (then a server that does not
answer fails the test: CI sets it and must not pass by skipping), else the local default
that `.ci/scripts/postgres.sh` makes, else the test is skipped with the reason.
`postgres_schema()` gives a URL whose connections see only a new, empty schema (through
`search_path`, so other processes given the URL see it too) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from sqlalchemy import create_engine, make_url, pool, text
from sqlalchemy.exc import SQLAlchemyError

ENV_VAR = "CHATOPS_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql+psycopg://chatops:pg-test-Qx7w@127.0.0.1:5432/chatops_test"
HOW = "run .ci/scripts/postgres.sh (as root) or set " + ENV_VAR


def postgres_server_url() -> str:
    """The URL of the test server, or skip (fail when ENV_VAR asked for it) with the reason."""
    explicit = os.environ.get(ENV_VAR, "")
    url = explicit or DEFAULT_URL
    problem = _unreachable(url)
    if problem is None:
        return url
    shown = make_url(url).render_as_string(hide_password=True)
    if explicit:
        pytest.fail(f"{ENV_VAR} is set, but PostgreSQL at {shown} {problem}", pytrace=False)
    pytest.skip(f"no PostgreSQL for the tests: {shown} {problem}; {HOW}")


@contextmanager
def postgres_schema(*, settings: dict[str, str] | None = None) -> Iterator[str]:
    """A URL on the test server whose only visible schema is a new one, dropped afterwards.

    `settings`: more session settings for every connection (e.g. {"timezone": "Asia/Tokyo"}).
    """
    server = postgres_server_url()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=pool.NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        options = " ".join(
            f"-c{name}={value}"
            for name, value in {"search_path": schema, **(settings or {})}.items()
        )
        url = make_url(server).update_query_dict({"options": options})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test server (see `postgres_schema`)."""
    with postgres_schema() as url:
        yield url


@cache
def _unreachable(url: str) -> str | None:
    """Why `url` cannot be used (checked once per run), or None when it answers."""
    try:
        import psycopg  # noqa: F401  (the driver of DEFAULT_URL)
    except ImportError:
        return 'cannot be reached: the driver is missing (pip install "psycopg[binary]")'
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        first_line = str(exc.orig or exc).strip().splitlines()[0]
        return f"does not answer ({first_line})"
    finally:
        engine.dispose()
    return None
