"""Nothing is cut without saying what was cut: a version that logged 1,420 metrics is deployed
and its thread lists the metrics that fit, whole, and how many more there are (it was cut at
Slack's limit mid-number with a bare "…"). Over signed requests to the running front, the
Slack Web API emulator and a real MLflow registry."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import Metric

from core.registry.demo import create_demo_model
from tests.scenarios.slack.conftest import OPS, RunningFront

METRICS = 1420


@pytest.fixture
def registry_uri(tmp_path: Path) -> str:
    """A registry of this test's own: the session's is shared, and `wide` must not show up in
    what other tests list."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=tmp_path / "artifacts")
    return uri


def register_wide(tracking_uri: str) -> None:
    """`wide` v1: iris v1's model, from a run that logged `METRICS` metrics and accuracy."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    iris = client.get_model_version("iris", "1")
    run = client.create_run(client.get_run(str(iris.run_id)).info.experiment_id, run_name="wide")
    metrics = [Metric(f"class_{i:04d}", 0.93, 0, 0) for i in range(METRICS)]
    metrics.append(Metric("accuracy", 0.93, 0, 0))
    for at in range(0, len(metrics), 500):
        client.log_batch(run.info.run_id, metrics=metrics[at : at + 500])
    client.set_terminated(run.info.run_id)
    client.create_registered_model("wide")
    client.create_model_version("wide", str(iris.source), run_id=run.info.run_id)


def test_a_version_with_1420_metrics_says_how_many_it_left_out(
    running_front: RunningFront, registry_uri: str
) -> None:
    register_wide(registry_uri)
    running_front.post("/deploy", "wide v1")
    running_front.drain()
    thread = [m.text for m in running_front.api.messages(OPS) if m.thread_ts]
    (resolved,) = [t for t in thread if "resolved wide v1" in t]
    found = re.search(
        r"accuracy 0\.93, (class_\d{4} 0\.93, )*class_(\d{4}) 0\.93 … and (\d+) more metrics\)",
        resolved,
    )
    assert found, resolved
    assert int(found[2]) + 1 + int(found[3]) == METRICS  # every metric shown or counted
    assert len(resolved) < 1000
