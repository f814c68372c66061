"""A registered model in versions that answer alike, differently, slowly, or fail: v1 and v2
predict `a + b`, v3 `a + b + 0.5`, v4 `a + b` after sleeping 200 ms, v5 `a + b` but fails
(HTTP 500, an MLflow INTERNAL_ERROR) for a row whose `a` is 10 or more."""

from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

TWIN = "twin"
COLUMNS = ["a", "b"]
ROW = {"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}}
FAILS_ON_V5 = {"dataframe_split": {"columns": COLUMNS, "data": [[10.0, 2.0]]}}
SAME, SAME_AGAIN, OFF_BY_HALF, SLOW, FAILING = 1, 2, 3, 4, 5

_SOURCE = """
import time

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR


class Twin(mlflow.pyfunc.PythonModel):
    def __init__(self, offset=0.0, sleep_s=0.0, fails=False):
        self.offset, self.sleep_s, self.fails = offset, sleep_s, fails

    def predict(self, context, model_input, params=None):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fails and (model_input["a"] >= 10).any():
            raise MlflowException("the candidate is broken", error_code=INTERNAL_ERROR)
        return model_input["a"] + model_input["b"] + self.offset
"""

_VERSIONS = [{}, {}, {"offset": 0.5}, {"sleep_s": 0.2}, {"fails": True}]


def log_twin(tracking_uri: str, work: Path) -> list[int]:
    """Register v1..v5 of `twin` in the registry at `tracking_uri`, artifacts under `work`."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    module = work / "twin_model.py"
    module.write_text(textwrap.dedent(_SOURCE))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.MlflowClient(tracking_uri).create_experiment(
        "twin", artifact_location=(work / "artifacts").absolute().as_uri()
    )
    example = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    sys.path.insert(0, str(work))
    made = []
    try:
        import twin_model

        for kwargs in _VERSIONS:
            with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=twin_model.Twin(**kwargs),
                    code_paths=[str(module)],
                    signature=infer_signature(example, example["a"] + example["b"]),
                    input_example=example,
                    registered_model_name=TWIN,
                    pip_requirements=["mlflow", "pandas"],
                )
            made.append(int(info.registered_model_version))
    finally:
        mlflow.set_tracking_uri(previous)
        sys.path.remove(str(work))
        sys.modules.pop("twin_model", None)
    return made
