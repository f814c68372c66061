"""Fixtures for the CML target suite: an emulated workspace over the session registry (iris
v1, v2 and a broken v3), a `cml` environment pointing at it, and the real Deployer driving a
CMLTarget over real HTTP. Imported by the test module that uses them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, RecordingTransport
from cml_swagger import Swagger

from core.admission.deployer import Deployer
from core.config import Environment, Limits, Settings
from core.registry.mlflow import Registry
from core.resources import Resources
from core.runtime import Core, wire
from core.store.repos import Repositories
from core.targets.cml import CMLClient
from core.targets.cml.models import Model
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator, start_emulator

KEY_VAR = "CHATOPS_TEST_CML_API_KEY"


def cml_environment(url: str, **overrides: Any) -> Environment:
    fields: dict[str, Any] = {
        "name": "dev",
        "target": "cml",
        "url": url,
        "api_key_env": KEY_VAR,
        "project_id": PROJECT_ID,
        "default": Resources(cpu=1, memory_mb=2048, replicas=1),
        "limits": Limits(cpu=4, memory_mb=8192, replicas=3, gpus=1),
        "build_timeout_s": 30,
        "deploy_timeout_s": 30,
    }
    fields.update(overrides)
    return Environment(**fields)


def make_target(
    env: Environment,
    *,
    api_key: str = API_KEY,
    traffic: httpx.BaseTransport | None = None,
    retries: int = 4,
    stop_timeout_s: float = 5,
) -> CMLTarget:
    """A target with tiny poll intervals and client backoff, as the emulator's stages are."""
    return CMLTarget.connect(
        env=env,
        api_key=api_key,
        transport=traffic,
        retries=retries,
        backoff=0.002,
        poll_initial_s=0.005,
        poll_max_s=0.05,
        stop_timeout_s=stop_timeout_s,
        smoke_timeout_s=5,
    )


def make_core(state: Path, registry_uri: str, *targets: CMLTarget) -> Core:
    settings = Settings(
        state_dir=state,
        mlflow_tracking_uri=registry_uri,
        environments=[t.env for t in targets],
        default_environment=targets[0].env.name,
    )
    return wire(
        settings=settings,
        repos=Repositories.open(f"sqlite:///{state}/s.db"),
        registry=Registry(tracking_uri=registry_uri),
        targets={t.env.name: t for t in targets},
    )


@dataclass
class CMLRig:
    """One emulated workspace, the Deployer with a CMLTarget on it, the traffic the target
    sent, and an admin client to look at what it did."""

    emulator: RunningEmulator
    target: CMLTarget
    deployer: Deployer
    traffic: RecordingTransport
    admin: CMLClient
    core: Core

    @property
    def repos(self) -> Repositories:
        return self.deployer.repos

    def model(self, name: str = "iris@dev") -> Model:
        models = self.admin.list_models(PROJECT_ID, search_filter={"name": name}).models
        assert len(models) == 1, models
        return models[0]

    def predict(self, example: dict[str, Any], *, auth: bool = True) -> httpx.Response:
        headers = {"authorization": f"Bearer {API_KEY}"} if auth else {}
        payload = {"accessKey": self.model().access_key, "request": example}
        return httpx.post(self.emulator.model_url, json=payload, headers=headers, timeout=10)


RigFactory = Callable[..., CMLRig]


@pytest.fixture
def cml_workspace(registry_uri: str) -> Iterator[RunningEmulator]:
    """A fresh emulated workspace whose registry is the session's MLflow registry."""
    running = start_emulator(
        tracking_uri=registry_uri,
        api_key=API_KEY,
        projects=[{"name": "demo", "id": PROJECT_ID}],
    )
    yield running
    running.stop()


@pytest.fixture
def cml_rig(
    tmp_path: Path,
    registry_uri: str,
    cml_workspace: RunningEmulator,
    spec_or_none: Swagger | None,
) -> Iterator[RigFactory]:
    """Makes rigs on the workspace: `cml_rig(api_key=..., retries=..., stop_timeout_s=...,
    **environment)`. Every API call their targets made is checked against the spec after."""
    rigs: list[CMLRig] = []

    def make(
        *, api_key: str = API_KEY, retries: int = 4, stop_timeout_s: float = 5, **environment: Any
    ) -> CMLRig:
        traffic = RecordingTransport()
        env = cml_environment(cml_workspace.url, **environment)
        target = make_target(
            env, api_key=api_key, traffic=traffic, retries=retries, stop_timeout_s=stop_timeout_s
        )
        core = make_core(tmp_path / f"state{len(rigs)}", registry_uri, target)
        admin = CMLClient(base_url=cml_workspace.url, api_key=API_KEY)
        rigs.append(CMLRig(cml_workspace, target, core.deployer, traffic, admin, core))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.admin.close()
        rig.core.close()
        if spec_or_none is not None:
            problems = spec_or_none.check_exchanges(rig.traffic.exchanges)
            assert not problems, "traffic off the spec:\n" + "\n".join(problems)


@pytest.fixture
def cml(cml_rig: RigFactory) -> CMLRig:
    """The Deployer driving a CMLTarget on the `dev` environment of the workspace."""
    return cml_rig()
