"""The error-rate trigger of the watch window: a version that answers real requests with
server errors (5xx), more often than the environment's `max_error_rate` over at least
`watch_min_requests` of its answers, is rolled back by itself; fewer answers are not judged.
Counted by the local target from the requests the endpoint really served."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from core.alerts import LogAlerts
from core.config import Settings
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.local.target import Zygote
from core.watching import CHECK_S
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.scenarios.test_deploy_scale_status import run

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """iris v1, v2 (the demo) and v3, which fails with a 500 on measurements over 100 cm."""
    root = tmp_path / "registry"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    _log_fragile_version(uri, root)
    return make_settings(tmp_path / "state", uri)


def _log_fragile_version(uri: str, work: Path) -> None:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    module = work / "fragile_model.py"
    module.write_text(
        textwrap.dedent("""
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

        class Fragile(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                if (model_input > 100).any().any():  # as a lost backing service would
                    raise MlflowException("the feature store is gone", INTERNAL_ERROR)
                return [0] * len(model_input)
    """)
    )
    sys.path.insert(0, str(work))
    previous = mlflow.get_tracking_uri()  # global: later tests register through it
    try:
        import fragile_model

        mlflow.set_tracking_uri(uri)
        experiment = mlflow.MlflowClient(uri).get_experiment_by_name("iris-demo")
        assert experiment is not None
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=fragile_model.Fragile(),
                code_paths=[str(module)],
                registered_model_name="iris",
                input_example=pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=COLUMNS),
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
        sys.path.remove(str(work))


def _send(url: str, n: int, value: float) -> list[int]:
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[value] * 4]}}
    return [httpx.post(url, json=body, timeout=10).status_code for _ in range(n)]


def test_a_version_answering_with_server_errors_is_rolled_back_by_itself(
    settings: Settings, zygote: Zygote, clock: FakeClock
) -> None:
    runtime = Runtime(settings, zygote=zygote, clock=clock)
    try:
        assert run(runtime, "/deploy iris v2").ok
        deployed = run(runtime, "/deploy iris v3")
        assert deployed.ok
        printed: list[str] = []
        watcher = runtime.watcher(alerts=LogAlerts(say=printed.append), runner=runtime.runner)
        watcher.tick()

        assert set(_send(deployed.url, 5, 500.0)) == {500}  # too few answers to judge
        clock.advance(CHECK_S)
        watcher.tick()
        assert runtime.repos.endpoints.get("dev", "iris").version == 3  # type: ignore[union-attr]
        assert printed == []

        assert set(_send(deployed.url, 30, 500.0)) == {500}
        clock.advance(CHECK_S)
        watcher.tick()
        assert watcher.settle(120)
        assert runtime.repos.endpoints.get("dev", "iris").version == 2  # type: ignore[union-attr]
        assert printed[0].startswith(
            ":rotating_light: iris in dev: iris v3 answered 35 of 35 requests with a server "
            "error (100.0%, more than max_error_rate 5.0%)"
        )
        assert printed[1].startswith("iris in dev is rolled back: iris v2 is live at http://")
        assert _send(deployed.url, 1, 5.1) == [200]
        (row,) = [e for e in runtime.repos.audit.entries() if e.action == "auto-rollback"]
        assert row.outcome == "succeeded"
    finally:
        runtime.shut_down_endpoints()
        runtime.close()
