"""The model service of a workspace: where it answers, how to call a model there, and the
example a smoke test sends."""

from __future__ import annotations

import ipaddress
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.errors import DeployFailed, RegistryError
from core.mlflow_imports import mlflow_imports
from core.targets.base import ModelSource
from core.targets.cml.http import REDACTED
from core.targets.cml.models import Model
from core.targets.cml.poller import Poller
from core.versions import ModelVersion

EXAMPLE_FILE = "serving_input_example.json"


def model_service_url(workspace_url: str) -> str:
    """CML serves models at `https://modelservice.<workspace host>/model`; a workspace reached
    by IP address or a bare host name (an emulator) serves them on its own origin."""
    parts = urlsplit(workspace_url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        by_address = True
    except ValueError:
        by_address = False
    if by_address or "." not in host:
        return f"{parts.scheme}://{parts.netloc}/model"
    return f"{parts.scheme}://modelservice.{parts.netloc}/model"


def input_example(source: ModelSource, mv: ModelVersion) -> dict[str, Any] | None:
    """The version's serving input example (MLflow logs it next to the model), or None. Only
    that one file is fetched: the workspace, not the bot, loads the model itself."""
    with mlflow_imports():  # MLflow takes seconds to import
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

    try:
        uri = source.download_uri(mv)
        with tempfile.TemporaryDirectory(prefix="chatops-example-") as tmp:
            local = download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{EXAMPLE_FILE}",
                dst_path=tmp,
                tracking_uri=source.tracking_uri,
            )
            example = json.loads(Path(local).read_text())
    except (RegistryError, MlflowException, OSError, ValueError):
        return None
    return example if isinstance(example, dict) else None


@dataclass(frozen=True)
class Answer:
    prediction: Any
    deployment_crn: str
    latency_ms: float


class ModelService:
    """Calls deployed models the way their clients do: `POST /model` with the model's access
    key, and the API key as a bearer token when the model has authentication on."""

    def __init__(self, *, url: str, api_key: str, poller: Poller, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._api_key = api_key
        self._poller = poller
        self._http = httpx.Client(timeout=30.0)

    def predict(self, model: Model, request: dict[str, Any], *, auth: bool) -> Answer:
        """The model's answer to `request`; `DeployFailed` when it gives none. Retries for
        `timeout_s` while the service is not reachable or answers 502-504, as it may for a
        moment after a deployment comes up."""
        payload = {"accessKey": model.access_key, "request": request}
        headers = {"authorization": f"Bearer {self._api_key}"} if auth else {}
        latency: list[float] = []
        errors: list[str] = []

        def send() -> httpx.Response | None:
            begun = time.perf_counter()
            try:
                response = self._http.post(self.url, json=payload, headers=headers)
            except httpx.TransportError as exc:  # its text may hold the URL, never a key
                errors.append(type(exc).__name__)
                response = None
            latency.append((time.perf_counter() - begun) * 1000)
            return response

        polled = self._poller.until(
            send,
            lambda r: r is not None and r.status_code not in (502, 503, 504),
            timeout_s=self.timeout_s,
        )
        response = polled.value
        if response is None:
            raise DeployFailed(
                f"the model service at {self.url} did not answer ({errors[-1]}) "
                f"within {self.timeout_s:g} s"
            )
        body = _json(response)
        if response.status_code != 200 or body.get("success") is not True:
            said = self._scrub(str(body.get("error") or response.text), model)[:300]
            raise DeployFailed(
                f"the model service at {self.url} answered HTTP {response.status_code}: {said}"
            )
        answer = body.get("response")
        answer = answer if isinstance(answer, dict) else {"prediction": answer}
        return Answer(
            prediction=answer.get("prediction"),
            deployment_crn=str(answer.get("model_deployment_crn") or ""),
            latency_ms=latency[-1],
        )

    def _scrub(self, text: str, model: Model) -> str:
        for secret in (self._api_key, model.access_key):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def close(self) -> None:
        self._http.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
