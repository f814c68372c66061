"""A CML endpoint's traffic in `status`: CML API v2 has no request counts, errors or latency
for models (the spec has no metrics route for models, builds or deployments), so status says
so and where the workspace shows them, while the endpoint serves real predictions."""

from __future__ import annotations

from conftest_target import CMLRig

from bot.slack.rendering import blocks
from commands.base import StatusReport
from core.admission.roles import Actor
from core.events import Outcome
from core.registry.mlflow import Registry
from core.registry.source import RegistrySource
from core.targets.base import EndpointRef
from core.targets.cml.serving import input_example
from tests.conftest import Recorder

pytest_plugins = ["conftest_target"]  # the fixtures cml, cml_rig, cml_workspace


def test_status_says_cml_reports_no_traffic_and_where_to_look(
    cml: CMLRig, registry_uri: str
) -> None:
    deployed = cml.deployer.deploy(
        model="iris",
        version=1,
        env="dev",
        actor=Actor(id="console", name="ada"),
        command="/deploy iris v1",
        reporter=Recorder(),
    )
    assert isinstance(deployed, Outcome) and deployed.ok, deployed
    registry = Registry(tracking_uri=registry_uri)
    example = input_example(RegistrySource(registry), registry.resolve("iris", version=1))
    assert example is not None
    for _ in range(3):
        assert cml.predict(example).status_code == 200

    before = len(cml.traffic.exchanges)
    seen = cml.target.traffic(EndpointRef("dev", "iris"))
    assert len(cml.traffic.exchanges) == before  # nothing to ask the API for
    assert (seen.known, seen.requests, seen.per_minute, seen.p99_ms) == (False, 0, None, None)

    rows = cml.deployer.status(env="dev")
    assert isinstance(rows, list)
    (ep,) = rows
    assert ep.up and ep.traffic is not None and not ep.traffic.known
    detail = ep.traffic.detail
    assert "CML API v2 reports no request counts, errors or latency" in detail
    assert "Model Deployments > iris@dev > Monitoring" in detail

    _, shown = blocks.status(StatusReport(endpoints=rows, detail=True, env="dev"))
    text = "\n".join(str(b.get("text", "")) for b in shown)
    assert "Model Deployments &gt; iris@dev &gt; Monitoring" in text  # escaped for mrkdwn
