"""The journeys' world: a registry with iris (v1, v2 @champion) and flaky (v1, v2, v3, one
code whose answers depend on its input), and hypothesis profiles: `ci` (a few examples, a
fixed seed, minutes) and `long` (`make journeys`, or CHATOPS_JOURNEYS_PROFILE=long)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from core.registry.demo import create_demo_model
from tests.local.flaky import log_flaky

_EVERY_CHECK = list(HealthCheck)
_NO_SHRINK = (Phase.explicit, Phase.generate)
# Journeys share one bot (starting one takes many seconds): what bounds a run is examples x
# steps. Hypothesis's first two journeys are its simplest (every step the simplest rule, then
# no step at all): random ones begin with the third.
settings.register_profile(
    "ci",
    max_examples=4,
    stateful_step_count=12,
    derandomize=True,  # the same journeys on every run: a red CI is a real change
    database=None,
    deadline=None,
    phases=_NO_SHRINK,
    suppress_health_check=_EVERY_CHECK,
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("CHATOPS_JOURNEYS_EXAMPLES", "25")),
    stateful_step_count=40,
    derandomize=False,
    database=None,
    deadline=None,
    phases=(*_NO_SHRINK, Phase.shrink) if os.environ.get("CHATOPS_JOURNEYS_SHRINK") else _NO_SHRINK,
    suppress_health_check=_EVERY_CHECK,
    print_blob=True,
)
PROFILE = os.environ.get("CHATOPS_JOURNEYS_PROFILE", "ci")


@pytest.fixture(scope="session")
def journey_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry of its own (flaky is registered here only): iris v1, v2; flaky v1-v3."""
    root = tmp_path_factory.mktemp("journey-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    log_flaky(uri, root, versions=3)
    return uri


@pytest.fixture
def journey_dir(tmp_path: Path) -> Path:
    return tmp_path
