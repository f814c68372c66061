"""What a change would do, worked out before any limit or lock is checked: the endpoint, the
version (or the alias, left to the rollout), the resources and the headline people read; or
the refusal that says what is missing and what to type instead. Working it out writes
nothing."""

from __future__ import annotations

import pytest

from core.admission.intents import Intent, Intents
from core.admission.roles import Action
from core.config import Environment
from core.errors import RegistryError
from core.marks import plain
from core.resources import Resources
from core.runtime import Core
from tests.conftest import Recorder
from tests.unit.core.admission.conftest import (
    ADMIN_DEV,
    ADMIN_PROD,
    ADMIN_PROD_2,
    DEVELOPER,
    deployed,
    refused,
    state,
)


def env(core: Core, name: str) -> Environment:
    found = core.settings.environment(name)
    assert found is not None
    return found


def intent(result: object) -> Intent:
    assert isinstance(result, Intent), result
    return result


# -- deploy -------------------------------------------------------------------------------
def test_a_first_deploy_takes_the_defaults_of_the_environment(core: Core) -> None:
    before = state(core)
    found = intent(
        core.deployer.intents.deploy(
            env(core, "prod"), model="iris", version=2, alias=None, actor=ADMIN_PROD
        )
    )
    assert (found.action, found.endpoint, found.model, found.version, found.what) == (
        Action.DEPLOY,
        "iris",
        "iris",
        2,
        "v2",
    )
    assert found.current is None
    assert found.resources == Resources(cpu=1, memory_mb=1024, replicas=1)
    assert plain(found.headline) == "pat is deploying iris v2 to prod"
    assert state(core) == before
    assert core.repos.audit.entries() == []


def test_a_redeploy_keeps_the_resources_the_endpoint_was_given(core: Core) -> None:
    deployed(core, 1)
    scaled = core.deployer.scale(
        endpoint="iris",
        cpu=2,
        replicas=3,
        env="dev",
        actor=ADMIN_DEV,
        command="/scale iris cpu 2 replicas 3 in dev",
        reporter=Recorder(),
    )
    assert scaled.ok, scaled
    found = intent(
        core.deployer.intents.deploy(
            env(core, "dev"), model="iris", version=2, alias=None, actor=ADMIN_DEV
        )
    )
    assert found.resources == Resources(cpu=2, memory_mb=512, replicas=3)
    assert found.current is not None and found.current.version == 1


def test_an_alias_is_left_for_the_rollout_to_resolve(core: Core) -> None:
    found = intent(
        core.deployer.intents.deploy(
            env(core, "dev"), model="iris", version=None, alias="champion", actor=ADMIN_DEV
        )
    )
    # the alias may move before the rollout runs: the intent names it, not a version
    assert (found.version, found.alias, found.what) == (None, "champion", "@champion")
    assert plain(found.headline) == "ada is deploying iris @champion to dev"


def test_an_approved_deploy_names_who_asked_and_who_approved(core: Core) -> None:
    found = intent(
        core.deployer.intents.deploy(
            env(core, "prod"),
            model="iris",
            version=2,
            alias=None,
            actor=DEVELOPER,
            approver=ADMIN_PROD_2,
        )
    )
    assert plain(found.headline) == "dev is deploying iris v2 to prod (approved by quinn)"


def test_a_model_the_registry_lacks_is_refused_with_the_closest_name(core: Core) -> None:
    before = state(core)
    text = refused(
        core.deployer.intents.deploy(
            env(core, "dev"), model="irsi", version=1, alias=None, actor=ADMIN_DEV
        )
    )
    assert text == "there is no model called `irsi` in the registry (did you mean `iris`?)"
    assert state(core) == before


def test_a_name_like_no_model_lists_what_the_registry_has(core: Core) -> None:
    text = refused(
        core.deployer.intents.deploy(
            env(core, "dev"), model="zebra", version=1, alias=None, actor=ADMIN_DEV
        )
    )
    assert text == "there is no model called `zebra` in the registry (registered models: " + (
        "crasher, iris)"
    )


@pytest.mark.parametrize(
    ("names", "hint"),
    [
        ([], "the registry is empty"),
        (
            [f"model-{i:02d}" for i in range(12)],
            "registered models: " + ", ".join(f"model-{i:02d}" for i in range(10)) + " and 2 more",
        ),
    ],
)
def test_the_list_of_registered_models_is_said_in_short(
    core: Core, names: list[str], hint: str
) -> None:
    intents = Intents(repos=core.repos, locker=core.locker, known_models=lambda: names)
    text = refused(
        intents.deploy(env(core, "dev"), model="zebra", version=1, alias=None, actor=ADMIN_DEV)
    )
    assert text == f"there is no model called `zebra` in the registry ({hint})"


def test_a_registry_that_cannot_list_its_models_does_not_stop_the_deploy(core: Core) -> None:
    def unreachable() -> list[str]:
        raise RegistryError("the registry at http://mlflow:5000 did not answer")

    intents = Intents(repos=core.repos, locker=core.locker, known_models=unreachable)
    # the rollout's first step waits for the registry and reports in the thread meanwhile
    found = intent(
        intents.deploy(env(core, "dev"), model="iris", version=1, alias=None, actor=ADMIN_DEV)
    )
    assert found.version == 1


# -- scale --------------------------------------------------------------------------------
def test_scaling_an_endpoint_that_is_not_there_says_which_are_and_how_to_deploy(
    core: Core,
) -> None:
    text = refused(
        core.deployer.intents.scale(
            env(core, "dev"),
            endpoint="iris",
            cpu=None,
            memory_mb=None,
            replicas=2,
            gpus=None,
            actor=ADMIN_DEV,
        )
    )
    assert plain(text) == (
        "there is no endpoint `iris` in dev (endpoints: none); deploy it first with "
        "`/deploy iris v<N>`"
    )
    deployed(core, 1, model="crasher")
    text = refused(
        core.deployer.intents.scale(
            env(core, "dev"),
            endpoint="iris",
            cpu=None,
            memory_mb=None,
            replicas=2,
            gpus=None,
            actor=ADMIN_DEV,
        )
    )
    assert "(endpoints: crasher)" in text


def test_scaling_changes_only_what_is_given(core: Core) -> None:
    deployed(core, 2)
    found = intent(
        core.deployer.intents.scale(
            env(core, "dev"),
            endpoint="iris",
            cpu=None,
            memory_mb=2048,
            replicas=None,
            gpus=None,
            actor=ADMIN_DEV,
        )
    )
    assert (found.action, found.version) == (Action.SCALE, 2)
    assert found.resources == Resources(cpu=1, memory_mb=2048, replicas=1)
    assert plain(found.headline) == f"ada is scaling iris in dev to {found.resources.describe()}"


# -- rollback -----------------------------------------------------------------------------
def test_rollback_goes_to_the_version_that_served_before(core: Core) -> None:
    dev = env(core, "dev")
    assert plain(
        refused(core.deployer.intents.rollback(dev, endpoint="iris", actor=ADMIN_DEV))
    ) == (
        "iris in dev is not deployed: there is nothing to roll back to (deploy a version "
        "with `/deploy iris v<N>`)"
    )
    deployed(core, 1)
    assert plain(
        refused(core.deployer.intents.rollback(dev, endpoint="iris", actor=ADMIN_DEV))
    ).startswith("iris in dev has served only v1: there is nothing to roll back to")
    deployed(core, 2)
    found = intent(core.deployer.intents.rollback(dev, endpoint="iris", actor=ADMIN_DEV))
    assert (found.action, found.version) == (Action.ROLLBACK, 1)
    assert plain(found.headline) == "ada is rolling iris in dev back from v2 to v1"


def test_a_version_served_before_in_another_environment_is_not_rolled_back_to(
    core: Core,
) -> None:
    deployed(core, 1, "prod")
    deployed(core, 2)
    text = refused(
        core.deployer.intents.rollback(env(core, "dev"), endpoint="iris", actor=ADMIN_DEV)
    )
    assert "iris in dev has served only v2" in text


# -- stop ---------------------------------------------------------------------------------
def test_stopping_what_is_not_there_is_refused(core: Core) -> None:
    text = refused(core.deployer.intents.stop(env(core, "prod"), endpoint="iris", actor=ADMIN_PROD))
    assert text == "there is no endpoint `iris` in prod"


def test_an_endpoint_not_there_yet_but_being_deployed_says_who_is_deploying_it(
    core: Core,
) -> None:
    """A first deploy under way has no endpoint yet: its lock says what is happening."""
    held = core.locker.try_lock("dev", "iris", holder="ada", reason="ada is deploying iris v1")
    assert held.acquired
    for asked in (
        core.deployer.intents.stop(env(core, "dev"), endpoint="iris", actor=ADMIN_DEV),
        core.deployer.intents.rollback(env(core, "dev"), endpoint="iris", actor=ADMIN_DEV),
    ):
        text = plain(refused(asked))
        assert text.startswith("iris in dev is locked by ada since ")
        assert "for: ada is deploying iris v1. It is released when that operation ends" in text
        assert "`/cancel iris in dev`" in text
