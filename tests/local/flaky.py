"""A registered model that fails as a model in production can: its `predict` raises an
MLflow error of kind INTERNAL_ERROR for a row with a negative first value, which MLflow's
scoring protocol answers with HTTP 500, and a plain exception for a negative second value,
which MLflow answers 400 (it takes it for bad input)."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

FLAKY = "flaky"
COLUMNS = ["a", "b"]
GOOD = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}}
BAD = {"dataframe_split": {"columns": COLUMNS, "data": [[-1.0, 2.0]]}}
RAISES = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, -2.0]]}}

_SOURCE = """
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR


class Flaky(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["a"] < 0).any():
            raise MlflowException("the sensor sent a negative reading", error_code=INTERNAL_ERROR)
        if (model_input["b"] < 0).any():
            raise ValueError("b cannot be negative")
        return model_input["a"] + model_input["b"]
"""


def log_flaky(tracking_uri: str, work: Path, versions: int = 2) -> list[int]:
    """Register `versions` versions of `flaky` (same code) in the registry at `tracking_uri`,
    their artifacts under `work`."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    module = work / "flaky_model.py"
    module.write_text(textwrap.dedent(_SOURCE))
    previous = mlflow.get_tracking_uri()  # global: later tests register through it
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.MlflowClient(tracking_uri).create_experiment(
        "flaky", artifact_location=(work / "artifacts").absolute().as_uri()
    )
    example = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    sys.path.insert(0, str(work))
    made = []
    try:
        import flaky_model

        for _ in range(versions):
            with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=flaky_model.Flaky(),
                    code_paths=[str(module)],
                    signature=infer_signature(example, example["a"] + example["b"]),
                    input_example=example,
                    registered_model_name=FLAKY,
                    pip_requirements=["mlflow", "pandas"],
                )
            made.append(int(info.registered_model_version))
    finally:
        mlflow.set_tracking_uri(previous)
        sys.path.remove(str(work))
        # a model loaded later imports it from its own artifacts, as a model server does
        sys.modules.pop("flaky_model", None)
    return made
