"""The model service of a workspace: where it answers, and the example a smoke test sends."""

from __future__ import annotations

import ipaddress
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from core.registry.mlflow import ModelVersion, Registry

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


def input_example(registry: Registry, mv: ModelVersion) -> dict[str, Any] | None:
    """The version's serving input example (MLflow logs it next to the model), or None. Only
    that one file is fetched: the workspace, not the bot, loads the model itself."""
    from mlflow.artifacts import download_artifacts  # MLflow takes seconds to import
    from mlflow.exceptions import MlflowException

    try:
        uri = registry.client.get_model_version_download_uri(mv.model, str(mv.version))
        with tempfile.TemporaryDirectory(prefix="chatops-example-") as tmp:
            local = download_artifacts(
                artifact_uri=f"{str(uri).rstrip('/')}/{EXAMPLE_FILE}",
                dst_path=tmp,
                tracking_uri=registry.tracking_uri,
            )
            example = json.loads(Path(local).read_text())
    except (MlflowException, OSError, ValueError):
        return None
    return example if isinstance(example, dict) else None
