"""Test support for the CML suite: a transport that records real traffic, and polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pandas as pd

from core.targets.cml import CMLClient
from core.targets.cml.models import (
    BUILD_TERMINAL,
    ROLLOUT_TERMINAL,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateRegisteredModelRequest,
    ModelBuild,
    ModelDeployment,
    RegisteredVersionStatus,
)

T = TypeVar("T")

# Distinctive, so that a leak into any message, repr or log line is easy to find.
API_KEY = "cmlkey-5f2a9c0e7b1d4e3f"
PROJECT_ID = "d3m0-a1b2-c3d4-e5f6"


@dataclass(frozen=True)
class MlflowRuns:
    tracking_uri: str
    experiment_id: str
    good_run_id: str
    broken_run_id: str
    example: pd.DataFrame
    expected: list[int]


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str
    request_body: bytes
    status: int
    response_body: bytes


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that keeps every request and response body it carried."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        response = self._inner.handle_request(request)
        content = response.read()
        self.exchanges.append(
            Exchange(request.method, str(request.url), body, response.status_code, content)
        )
        return response

    def close(self) -> None:
        self._inner.close()

    def count(self, method: str, path_end: str) -> int:
        return sum(
            1
            for e in self.exchanges
            if e.method == method and httpx.URL(e.url).path.endswith(path_end)
        )


def wait_for(
    read: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 15.0, every: float = 0.01
) -> tuple[T, list[T]]:
    """Polls ``read`` until ``done``; returns the last value and each distinct value seen."""
    seen: list[T] = []
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if not seen or seen[-1] != value:
            seen.append(value)
        if done(value):
            return value, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout}s; saw {seen}")
        time.sleep(every)


def register_version(
    client: CMLClient, *, project_id: str, experiment_id: str, run_id: str, name: str
) -> tuple[str, str]:
    """Registers ``run_id``'s model as a new version of ``name`` through the CML registry and
    waits until it is REGISTERED; returns (registered model id, model version id)."""
    model = client.create_registered_model(
        CreateRegisteredModelRequest(
            project_id=project_id,
            experiment_id=experiment_id,
            run_id=run_id,
            model_path="model",
            model_name=name,
        )
    )
    assert model.model_id and model.model_versions
    version_id = model.model_versions[0].model_version_id
    assert version_id
    wait_for(
        lambda: client.get_registered_model_version(model.model_id or "", version_id).status,
        lambda status: status == RegisteredVersionStatus.REGISTERED,
    )
    return model.model_id, version_id


def build_until_done(
    client: CMLClient, project_id: str, model_id: str, version_id: str
) -> tuple[ModelBuild, list[str | None]]:
    """Creates a build of ``version_id``, polls it to a terminal status; returns the build and
    every status it was seen in, from the create call's answer on."""
    build = client.create_model_build(
        CreateModelBuildRequest(registered_model_version_id=version_id, comment="test build"),
        project_id,
        model_id,
    )
    assert build.id
    build_id = build.id
    _, seen = wait_for(
        lambda: client.get_model_build(project_id, model_id, build_id).status,
        lambda status: status in BUILD_TERMINAL,
    )
    statuses = [build.status, *seen] if seen[0] != build.status else seen
    return client.get_model_build(project_id, model_id, build_id), statuses


def deploy_until_done(
    client: CMLClient,
    project_id: str,
    model_id: str,
    build_id: str,
    body: CreateModelDeploymentRequest | None = None,
) -> tuple[ModelDeployment, list[str | None]]:
    """Creates a deployment of ``build_id`` and polls it until its rollout ends."""
    body = body or CreateModelDeploymentRequest(cpu=1, memory=2, replicas=1)
    deployment = client.create_model_deployment(body, project_id, model_id, build_id)
    assert deployment.id
    deployment_id = deployment.id
    _, seen = wait_for(
        lambda: client.get_model_deployment(project_id, model_id, build_id, deployment_id).status,
        lambda status: status in ROLLOUT_TERMINAL,
    )
    seen = [deployment.status, *seen] if seen[0] != deployment.status else seen
    return client.get_model_deployment(project_id, model_id, build_id, deployment_id), seen
