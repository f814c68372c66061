"""Fixtures for the local target: real model-server processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Environment
from core.registry.mlflow import ModelVersion, Registry
from core.targets.base import EndpointRef, quiet_step
from core.targets.local.target import LocalTarget, Zygote
from tests.conftest import free_port_range


@pytest.fixture
def registry(registry_uri: str) -> Registry:
    return Registry(tracking_uri=registry_uri)


@pytest.fixture
def local(tmp_path: Path, zygote: Zygote) -> Iterator[LocalTarget]:
    """A local target on its own state directory and ports; stops what it ran."""
    target = LocalTarget(
        env=Environment(name="dev", port_range=free_port_range()),
        state_dir=tmp_path / "state",
        zygote=zygote,
        start_timeout_s=30,
    )
    yield target
    for ref in target.endpoints():
        target.stop(ref, quiet_step())
    target.close()


def serve(
    target: LocalTarget, registry: Registry, ep: EndpointRef, version: int, deployment: str
) -> str:
    """Build and start `iris` v`version` as `deployment` of `ep`, checked, not switched in."""
    from core.resources import Resources

    step = quiet_step()
    mv: ModelVersion = registry.resolve("iris", version=version)
    built = target.build(ep, mv, registry, step)
    resources = Resources(cpu=1, memory_mb=1024, replicas=1)
    started = target.start(ep, mv, built, resources, deployment, step)
    target.smoke_test(ep, started, built, step)
    return started.deployment
