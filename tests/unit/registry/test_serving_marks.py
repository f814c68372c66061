"""`Registry.mark_serving` and `unmark_serving` against a real MLflow store in SQLite: the
alias and the tag move with what serves, an alias moved by someone else is left alone, and
what the registry refuses is a `RegistryError` naming the write."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from core.errors import RegistryError
from core.registry.mlflow import Registry

TAG = "chatops.prod.serving"


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    """`iris` v1 and v2, `lily` v1, in a registry of this test's own."""
    c = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for model, versions in (("iris", 2), ("lily", 1)):
        c.create_registered_model(model)
        for _ in range(versions):
            c.create_model_version(model, source=str(tmp_path / "model"))
    return c


def registry(client: MlflowClient) -> Registry:
    return Registry(tracking_uri=client.tracking_uri, wait_s=5)


def alias_of(client: MlflowClient, model: str) -> str | None:
    found = (client.get_registered_model(model).aliases or {}).get("prod")
    return None if found is None else str(found)


def tag_of(client: MlflowClient, model: str, version: int) -> str | None:
    return (client.get_model_version(model, str(version)).tags or {}).get(TAG)


def test_the_alias_and_the_tag_follow_what_serves(client: MlflowClient) -> None:
    r = registry(client)
    r.mark_serving(model="iris", version=1, alias="prod", tag=TAG, value="one")
    r.mark_serving(model="iris", version=2, alias="prod", tag=TAG, value="two", before=("iris", 1))

    assert alias_of(client, "iris") == "2"
    assert (tag_of(client, "iris", 1), tag_of(client, "iris", 2)) == (None, "two")

    # another model takes the endpoint over: iris's alias named what served, and goes
    r.mark_serving(model="lily", version=1, alias="prod", tag=TAG, value="l", before=("iris", 2))
    assert (alias_of(client, "iris"), alias_of(client, "lily")) == (None, "1")
    assert tag_of(client, "iris", 2) is None


def test_unmarking_leaves_an_alias_that_names_another_version(client: MlflowClient) -> None:
    r = registry(client)
    r.mark_serving(model="iris", version=1, alias="prod", tag=TAG, value="one")
    client.set_registered_model_alias("iris", "prod", "2")  # moved by hand

    assert r.unmark_serving(model="iris", version=1, alias="prod", tag=TAG) is False
    assert alias_of(client, "iris") == "2" and tag_of(client, "iris", 1) is None
    # and what is gone already is no error
    assert r.unmark_serving(model="iris", version=1, alias="prod", tag=TAG) is False
    assert r.unmark_serving(model="iris", version=2, alias="prod", tag=TAG) is True
    assert alias_of(client, "iris") is None


def test_a_version_the_registry_does_not_have_is_a_registry_error(client: MlflowClient) -> None:
    with pytest.raises(RegistryError) as refused:
        registry(client).mark_serving(model="iris", version=9, alias="prod", tag=TAG, value="x")
    assert "while moving @prod of iris to v9" in refused.value.message
    assert alias_of(client, "iris") is None
