"""Several environments in one CML project: each endpoint's model carries its environment and
endpoint in its name (`<endpoint>@<env>`), so `prod`/`eu-iris` and `prod-eu`/`iris` never
touch each other's model; a model named the old way (`<env>-<endpoint>`) is adopted only by
the one endpoint it can be, and left alone, saying what to rename, when two could own it.
With our client and with a generated `cmlapi` client, against the emulator over HTTP."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID
from conftest_cmlapi import adapter
from conftest_target import cml_environment, make_core
from mlflow import MlflowClient

from core.admission.roles import Actor
from core.config import Environment
from core.events import Outcome
from core.runtime import Core
from core.targets.base import EndpointRef
from core.targets.cml import CMLClient, iter_all
from core.targets.cml.calls import CallCounter
from core.targets.cml.models import CreateModelRequest, Model
from core.targets.cml.naming import Neighbours
from core.targets.cml.statuses import deployment_status
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator, start_emulator
from tests.conftest import Recorder

pytest_plugins = ["conftest_target", "conftest_cmlapi"]

ADMIN = Actor(id="console", name="ada")
OPTIONS = {
    "poll_initial_s": 0.005,
    "poll_max_s": 0.05,
    "stop_timeout_s": 5,
    "smoke_timeout_s": 5,
}


@pytest.fixture(scope="module")
def eu_registry(tmp_path_factory: pytest.TempPathFactory, registry_uri: str) -> str:
    """The session registry plus `eu-iris` v1 (iris v1's run and artifacts)."""
    copy = tmp_path_factory.mktemp("eu-registry") / "mlflow.db"
    shutil.copy(urlsplit(registry_uri).path, copy)
    uri = f"sqlite:///{copy}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = client.get_model_version("iris", "1")
    client.create_registered_model("eu-iris")
    client.create_model_version("eu-iris", source=v1.source, run_id=v1.run_id)
    return uri


@pytest.fixture
def shared(eu_registry: str) -> Iterator[RunningEmulator]:
    """One workspace, one project, for every environment of the test."""
    running = start_emulator(
        tracking_uri=eu_registry, api_key=API_KEY, projects=[{"name": "demo", "id": PROJECT_ID}]
    )
    yield running
    running.stop()


@pytest.fixture
def admin(shared: RunningEmulator) -> Iterator[CMLClient]:
    with CMLClient(base_url=shared.url, api_key=API_KEY) as client:
        yield client


Cores = Callable[..., Core]


@pytest.fixture(params=["builtin", "cmlapi"])
def cores(
    request: pytest.FixtureRequest, tmp_path: Path, eu_registry: str, shared: RunningEmulator
) -> Iterator[Cores]:
    """Makes a core whose CML targets (one per environment named, all in the shared project)
    use the client of the test's parameter."""
    made: list[Core] = []
    cmlapi: ModuleType | None = (
        request.getfixturevalue("cmlapi") if request.param == "cmlapi" else None
    )

    def make(*names: str) -> Core:
        envs = [cml_environment(shared.url, name=name, production=False) for name in names]
        targets = []
        for env in envs:
            if cmlapi is None:
                target = CMLTarget.connect(
                    env=env, api_key=API_KEY, backoff=0.002, sharing=envs, **OPTIONS
                )
            else:
                calls = CallCounter()
                client = adapter(env.url, calls=calls)
                target = CMLTarget(
                    env=env, client=client, api_key=API_KEY, calls=calls, sharing=envs, **OPTIONS
                )
            targets.append(target)
        made.append(make_core(tmp_path / f"state{len(made)}", eu_registry, *targets))
        return made[-1]

    yield make
    for core in made:
        core.close()


def deploy(core: Core, model: str, version: int, env: str) -> Outcome:
    result = core.deployer.deploy(
        model=model,
        version=version,
        env=env,
        actor=ADMIN,
        command=f"/deploy {model} v{version} to {env}",
        reporter=Recorder(),
    )
    assert isinstance(result, Outcome), result
    return result


def models(admin: CMLClient) -> dict[str, Model]:
    return {m.name or "": m for m in iter_all(admin.list_models, PROJECT_ID)}


def deployed(admin: CMLClient, model: Model) -> list[str]:
    """The ids of the model's deployments that are deployed now."""
    ids = []
    for build in iter_all(admin.list_model_builds, PROJECT_ID, model.id or ""):
        for dep in iter_all(
            admin.list_model_deployments, PROJECT_ID, model.id or "", build.id or ""
        ):
            if deployment_status(dep.status) == "deployed":
                ids.append(dep.id or "")
    return ids


def created(shared: RunningEmulator) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{shared.url}/_emulator/created", timeout=10).json()
    return counts


def test_environments_whose_names_join_alike_never_touch_each_others_model(
    cores: Cores, admin: CMLClient
) -> None:
    core = cores("prod", "prod-eu")
    prod = deploy(core, "eu-iris", 1, "prod")
    assert prod.ok, prod.text
    prod_eu = deploy(core, "iris", 2, "prod-eu")
    assert prod_eu.ok, prod_eu.text

    found = models(admin)
    assert set(found) == {"eu-iris@prod", "iris@prod-eu"}
    assert "stopping" not in prod_eu.text
    [serving] = deployed(admin, found["eu-iris@prod"])
    assert len(deployed(admin, found["iris@prod-eu"])) == 1
    health = core.deployer.targets["prod"].health(EndpointRef("prod", "eu-iris"))
    assert health.up and (health.model, health.version) == ("eu-iris", 1), health

    stopped = core.deployer.stop(
        endpoint="iris", env="prod-eu", actor=ADMIN, command="/stop iris", reporter=Recorder()
    )
    assert isinstance(stopped, Outcome) and stopped.ok, stopped.text

    assert deployed(admin, found["iris@prod-eu"]) == []
    assert deployed(admin, found["eu-iris@prod"]) == [serving]  # prod's endpoint untouched
    assert core.deployer.targets["prod"].health(EndpointRef("prod", "eu-iris")).up


def _old_model(admin: CMLClient, name: str) -> Model:
    """A model as earlier versions of the bot named and made it."""
    body = CreateModelRequest(
        project_id=PROJECT_ID, name=name, description=f"chatops endpoint {name}"
    )
    return admin.create_model(body, PROJECT_ID)


def test_a_model_named_the_old_way_is_adopted_by_its_own_endpoint(
    cores: Cores, admin: CMLClient
) -> None:
    old = _old_model(admin, "dev-iris")
    core = cores("dev", "prod")

    outcome = deploy(core, "iris", 1, "dev")

    assert outcome.ok, outcome.text
    assert set(models(admin)) == {"dev-iris"}  # no second model for the same endpoint
    assert len(deployed(admin, old)) == 1
    assert core.deployer.targets["dev"].health(EndpointRef("dev", "iris")).up


def test_an_old_name_two_endpoints_could_own_is_left_alone_saying_what_to_rename(
    cores: Cores, admin: CMLClient, shared: RunningEmulator
) -> None:
    _old_model(admin, "prod-eu-iris")  # prod's eu-iris, or prod-eu's iris?
    core = cores("prod", "prod-eu")

    prod_eu = deploy(core, "iris", 1, "prod-eu")
    prod = deploy(core, "eu-iris", 1, "prod")

    for outcome in (prod_eu, prod):
        assert not outcome.ok
        said = " ".join(outcome.text.split())
        assert "CML model prod-eu-iris was named by an earlier chatops" in said, said
        assert "rename it in CML to" in said
        assert "`eu-iris@prod`" in said and "`iris@prod-eu`" in said
    assert set(models(admin)) == {"prod-eu-iris"}
    assert created(shared)["model_builds"] == 0 and created(shared)["model_deployments"] == 0


def test_environments_of_other_projects_are_not_neighbours(shared: RunningEmulator) -> None:
    prod = cml_environment(shared.url, name="prod")
    elsewhere = cml_environment(shared.url + "/api/v2", name="prod-eu", project_id="x1y2")
    same = cml_environment(shared.url + "/api/v2/", name="prod-eu")
    local = Environment(name="prod-eu")

    assert Neighbours.of(prod, [prod, elsewhere, local]).names == ("prod",)
    assert Neighbours.of(prod, [prod, same]).names == ("prod", "prod-eu")
