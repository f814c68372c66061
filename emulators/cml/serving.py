"""The model service: ``POST /model`` with ``{"accessKey": ..., "request": {...}}``.

``request`` takes MLflow's JSON input formats (dataframe_split, dataframe_records, instances,
inputs). The answer is CML's envelope: ``{"success": true, "response": {"model_deployment_crn",
"prediction", "uuid"}}``; failures answer ``{"success": false, "error": ...}``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.scoring_server import infer_and_parse_data

from emulators.cml.workspace import Workspace


class ServingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def predict(
    workspace: Workspace, payload: Any, *, authorization: str | None, api_key: str
) -> dict[str, Any]:
    if not isinstance(payload, dict) or "accessKey" not in payload:
        raise ServingError(400, 'expected a JSON object {"accessKey": ..., "request": {...}}')
    model, deployment = workspace.serving(str(payload["accessKey"]))
    if model is None:
        raise ServingError(404, "no model has this access key")
    if model["auth_enabled"] and authorization != f"Bearer {api_key}":
        raise ServingError(401, "this model requires 'Authorization: Bearer <API key>'")
    if deployment is None:
        raise ServingError(503, f"model {model['name']!r} has no running deployment")
    request = payload.get("request")
    if not isinstance(request, dict):
        raise ServingError(400, '"request" must be a JSON object in an MLflow input format')
    pyfunc = deployment.build.model
    try:
        schema = pyfunc.metadata.get_input_schema()
        data = infer_and_parse_data(request, schema)
        output = pyfunc.predict(data)
    except Exception as exc:  # the model's own failure is the caller's answer, not a crash
        raise ServingError(400, f"prediction failed: {str(exc)[:500]}") from None
    deployment.served += 1
    return {
        "success": True,
        "response": {
            "model_deployment_crn": deployment.fields["crn"],
            "prediction": jsonable(output),
            "uuid": str(uuid.uuid4()),
        },
    }


def jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records"))
    if isinstance(value, pd.Series | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
