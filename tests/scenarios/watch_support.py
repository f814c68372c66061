"""What the watch tests share: model servers that die for good, and a registered version
that answers with server errors on demand."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx

from core.config import Settings
from core.registry.demo import create_demo_model
from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.host import MAX_RESTARTS
from tests.conftest import make_settings

IRIS = EndpointRef("dev", "iris")
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def fragile_settings(tmp_path: Path) -> Settings:
    """A registry of its own: iris v1, v2 (the demo) and v3, which fails with a 500 on
    measurements over 100 cm (its requests answer 200 or 500 as the test sends them)."""
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


def send(url: str, n: int, value: float) -> list[int]:
    """`n` requests of measurements all `value` cm; their statuses (v3: 500 above 100)."""
    body = {"dataframe_split": {"columns": COLUMNS, "data": [[value] * 4]}}
    return [httpx.post(url, json=body, timeout=10).status_code for _ in range(n)]


def kill_serving(runtime: Runtime, version: int) -> None:
    """SIGKILL the model servers of `version` until their host gives up restarting them."""
    target = runtime.targets["dev"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = target._call(IRIS, {"op": "status"})  # type: ignore[attr-defined]
        (dep,) = [
            d for d in status["deployments"] if d["version"] == version and d["state"] == "active"
        ]
        alive = [w["pid"] for w in dep["workers"] if w["alive"]]
        if not alive and all(w["restarts"] >= MAX_RESTARTS for w in dep["workers"]):
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):  # it died since the status
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise AssertionError("the model servers kept coming back")
