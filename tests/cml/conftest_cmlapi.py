"""Fixtures for driving the CML target through a generated `cmlapi` package: the package
(generated once per spec), and rigs whose target speaks to the emulated workspace only
through it, every request passing a recording proxy and checked against the spec after."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cml_support import API_KEY, RecordingTransport
from cml_swagger import Swagger
from cmlapi_support import RecordingProxy, generated_cmlapi
from conftest_target import CMLRig, cml_environment, make_core

from core.targets.cml import CMLClient
from core.targets.cml.calls import CallCounter
from core.targets.cml.service_api import CMLServiceAdapter
from core.targets.cml.target import CMLTarget
from emulators.cml import RunningEmulator

pytest_plugins = ["conftest_target"]


@pytest.fixture(scope="session")
def cmlapi() -> ModuleType:
    """`import cmlapi` of a package swagger-codegen 3.0.34 generated from the vendored spec."""
    home = str(generated_cmlapi())
    if home not in sys.path:
        sys.path.insert(0, home)
    return importlib.import_module("cmlapi")


@pytest.fixture
def cmlapi_proxy(cml_workspace: RunningEmulator, swagger: Swagger) -> Iterator[RecordingProxy]:
    """The workspace behind a proxy that records what reaches it; off-spec traffic fails."""
    proxy = RecordingProxy(cml_workspace.url)
    yield proxy
    proxy.close()
    problems = swagger.check_exchanges(proxy.api_exchanges())
    assert not problems, "cmlapi traffic off the spec:\n" + "\n".join(problems)


def adapter(
    url: str, *, api_key: str = API_KEY, calls: CallCounter | None = None
) -> CMLServiceAdapter:
    return CMLServiceAdapter.connect(url=url, api_key=api_key, calls=calls, backoff=0.002)


@pytest.fixture
def cmlapi_rig(
    tmp_path: Path,
    registry_uri: str,
    cml_workspace: RunningEmulator,
    cmlapi_proxy: RecordingProxy,
    cmlapi: ModuleType,
) -> Iterator[Callable[..., CMLRig]]:
    """Makes rigs whose CMLTarget uses cmlapi: `cmlapi_rig(api_key=..., **environment)`."""
    made: list[CMLRig] = []

    def make(*, api_key: str = API_KEY, **environment: Any) -> CMLRig:
        env = cml_environment(cmlapi_proxy.url, client="cmlapi", **environment)
        calls = CallCounter()
        target = CMLTarget(
            env=env,
            client=adapter(env.url, api_key=api_key, calls=calls),
            api_key=api_key,
            calls=calls,
            poll_initial_s=0.005,
            poll_max_s=0.05,
            stop_timeout_s=5,
            smoke_timeout_s=5,
        )
        core = make_core(tmp_path / f"state{len(made)}", registry_uri, target)
        admin = CMLClient(base_url=cml_workspace.url, api_key=API_KEY)
        made.append(CMLRig(cml_workspace, target, core.deployer, RecordingTransport(), admin, core))
        return made[-1]

    yield make
    for rig in made:
        rig.admin.close()
        rig.core.close()
