"""Local endpoints through the commands: environments never meet, a failed first deploy
leaves nothing listening, a stop stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.config import Environment
from core.events import Outcome
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.target import Zygote
from tests.conftest import free_port_range, make_settings
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS, run

BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


@pytest.fixture(scope="module")
def eu_registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry with `iris` v1, v2 and `eu-iris` v1 (iris v1's artifacts)."""
    import mlflow

    root = tmp_path_factory.mktemp("eu-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    client = mlflow.MlflowClient(tracking_uri=uri)
    v1 = client.get_model_version("iris", "1")
    client.create_registered_model("eu-iris")
    client.create_model_version("eu-iris", source=v1.source, run_id=v1.run_id)
    return uri


@pytest.fixture
def eu_runtime(tmp_path: Path, eu_registry_uri: str, zygote: Zygote) -> Iterator[Runtime]:
    low, high = free_port_range()
    environments = [
        Environment(name="prod", port_range=(low, low + 9)),
        Environment(name="prod-eu", port_range=(low + 10, high)),
    ]
    settings = make_settings(
        tmp_path / "state",
        eu_registry_uri,
        environments=environments,
        default_environment="prod",
    )
    rt = Runtime(settings, zygote=zygote)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def models_answering(url: str, requests: int = 30) -> list[str]:
    return [httpx.post(url, json=BODY, timeout=10).headers["x-model"] for _ in range(requests)]


def test_environments_whose_names_join_alike_never_share_an_endpoint(
    eu_runtime: Runtime,
) -> None:
    prod = run(eu_runtime, "/deploy eu-iris v1 to prod")
    assert isinstance(prod, Outcome) and prod.ok, prod.text
    prod_eu = run(eu_runtime, "/deploy iris v2 to prod-eu")
    assert isinstance(prod_eu, Outcome) and prod_eu.ok, prod_eu.text

    assert prod.url != prod_eu.url
    assert models_answering(prod.url) == ["eu-iris/1"] * 30
    assert models_answering(prod_eu.url) == ["iris/2"] * 30


def test_a_first_deploy_that_fails_leaves_its_port_refusing(runtime: Runtime) -> None:
    outcome = run(runtime, "/deploy crasher v1")
    assert isinstance(outcome, Outcome) and not outcome.ok

    url = runtime.deployer.targets["dev"].url(EndpointRef("dev", "crasher"))  # type: ignore[attr-defined]
    with pytest.raises(httpx.ConnectError):  # refused at once, not a request left hanging
        httpx.post(url, json=BODY, timeout=5)


def test_stop_ends_every_deployment_of_the_endpoint(runtime: Runtime) -> None:
    assert run(runtime, "/deploy iris v1").ok
    live = run(runtime, "/deploy iris v2")
    assert isinstance(live, Outcome) and live.ok

    stopped = run(runtime, "/stop iris")

    assert "iris in dev is stopped" in stopped.text
    with pytest.raises(httpx.ConnectError):
        httpx.post(live.url, json=BODY, timeout=5)
