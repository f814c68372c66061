"""What the canary scenarios share: the twin model's registry, and runtimes whose `dev` has a
rollout policy, serving the twin's first version."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Rollout
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.local.twin import SAME, TWIN, log_twin
from tests.scenarios.test_deploy_scale_status import run


@pytest.fixture(scope="module")
def twin_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("twin")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    log_twin(uri, root)
    return uri


def canary_runtime(
    state: Path, uri: str, zygote: Zygote, clock: FakeClock, policy: Rollout, **update: Any
) -> Runtime:
    """A runtime on `state` whose `dev` has `policy` (and `update`), looking every 50 ms."""
    settings = make_settings(state, uri, canary_look_s=0.05)
    settings.environments[0] = settings.environments[0].model_copy(
        update={"rollout": policy, **update}
    )
    return Runtime(settings, zygote=zygote, clock=clock)


@pytest.fixture
def make(
    tmp_path: Path, twin_uri: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Callable[..., Runtime]]:
    """A runtime whose `dev` has `policy` (and `update`), serving twin v1; the n-th one
    made in a test keeps its state in `state<n>`."""
    made: list[Runtime] = []

    def build(policy: Rollout, **update: Any) -> Runtime:
        state = tmp_path / f"state{len(made)}"
        rt = canary_runtime(state, twin_uri, zygote, clock, policy, **update)
        made.append(rt)
        assert run(rt, f"/deploy {TWIN} v{SAME}").ok
        return rt

    yield build
    for rt in made:
        rt.shut_down_endpoints()
        rt.close()
