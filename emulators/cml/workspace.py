"""The emulated workspace: projects, models, builds, deployments and runtimes, as API dicts
named like the spec's definitions. Every method answers what the matching operation returns
or raises ``ApiError``."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulators.cml.errors import ApiError
from emulators.cml.lifecycle import BuildRecord, DeploymentRecord, Lifecycle
from emulators.cml.registry import MlflowRegistry, iso, short_id

ACCOUNT = "9d74eee4-1cad-45d7-b645-7ccf9edbb73d"
WORKSPACE = "c3e1b2a0-5f4d-4e8a-9b7c-2d1e0f9a8b7c"

DEFAULT_RUNTIMES: tuple[dict[str, Any], ...] = tuple(
    {
        "image_identifier": f"docker.repository.cloudera.com/cloudera/cdsw/ml-runtime-{editor_slug}"
        f"-python{py}-standard:2025.01.1-b8",
        "editor": editor,
        "kernel": f"Python {py}",
        "edition": "Standard",
        "description": "Standard edition Python runtime provided by Cloudera",
        "full_version": "2025.01.1-b8",
        "status": "ENABLED",
    }
    for py in ("3.10", "3.11")
    for editor, editor_slug in (("PBJ Workbench", "pbj-workbench"), ("JupyterLab", "jupyterlab"))
)


def crn(resource_id: str) -> str:
    return f"crn:cdp:ml:us-west-1:{ACCOUNT}:workspace:{WORKSPACE}/{resource_id}"


class Workspace:
    def __init__(
        self,
        *,
        registry: MlflowRegistry,
        lifecycle: Lifecycle,
        user: dict[str, str],
        projects: Iterable[str | Mapping[str, Any]],
        runtimes: Iterable[Mapping[str, Any]] = DEFAULT_RUNTIMES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.lifecycle = lifecycle
        self.user = user
        self._clock = clock
        self._lock = threading.RLock()
        self.projects: dict[str, dict[str, Any]] = {}
        for seed in projects:
            self.add_project(seed)
        self.runtimes = [dict(r) for r in runtimes]
        self.models: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, BuildRecord] = {}
        self.deployments: dict[str, DeploymentRecord] = {}

    def now(self) -> float:
        return self._clock()

    # -- projects --------------------------------------------------------------------------

    def add_project(self, seed: str | Mapping[str, Any]) -> dict[str, Any]:
        spec = {"name": seed} if isinstance(seed, str) else dict(seed)
        name = str(spec["name"])
        # a private project of another user: it exists, but the key's user may not use it
        owner = {**self.user, "username": str(spec["owner"])} if spec.get("owner") else self.user
        stamp = iso(self.now(), millis=False)
        project_id = str(spec.get("id") or short_id("project", name))
        project: dict[str, Any] = {
            "id": project_id,
            "name": name,
            "owner": owner,
            "creator": owner,
            "description": spec.get("description", ""),
            "visibility": spec.get("visibility", "private"),
            "default_engine_type": "ml_runtime",
            "created_at": stamp,
            "updated_at": stamp,
            "creation_status": "success",
            "permissions": {"read": True, "write": True, "admin": True},
            "slug": f"{owner['username']}/{name}",
        }
        with self._lock:
            self.projects[project_id] = project
        return project

    def project(self, project_id: str) -> dict[str, Any]:
        try:
            project = self.projects[project_id]
        except KeyError:
            raise ApiError.not_found("project", project_id) from None
        if project["owner"]["username"] != self.user["username"] and (
            project["visibility"] == "private"
        ):
            raise ApiError(403, f"permission denied: project {project_id} is private")
        return project

    # -- models ----------------------------------------------------------------------------

    def create_model(self, project_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        project = self.project(project_id)
        name = body.get("name") or ""
        if not name:
            raise ApiError.invalid("model name is required")
        with self._lock:
            if any(m["name"] == name for m in self.models_of(project_id)):
                raise ApiError(409, f"a model named {name!r} already exists in this project")
            model_id = str(uuid.uuid4())
            stamp = iso(self.now(), millis=False)
            model = {
                "id": model_id,
                "name": name,
                "description": body.get("description") or "",
                "creator": self.user,
                "access_key": "m" + secrets.token_hex(16)[:31],
                "deletion_status": "",
                "created_at": stamp,
                "updated_at": stamp,
                "crn": crn(model_id),
                "auth_enabled": not body.get("disable_authentication", False),
                "project": {
                    "public_identifier": project_id,
                    "name": project["name"],
                    "default_project_engine": "ml_runtime",
                    "slug": project["slug"],
                },
                "registered_model_id": body.get("registered_model_id") or "",
                "visibility": body.get("visibility") or "private",
                "default_resources": {
                    "cpu_millicores": "1000",
                    "memory_mb": "2048",
                    "nvidia_gpus": "0",
                },
                "default_replication_policy": {"num_replicas": "1", "type": "fixed"},
            }
            self.models[model_id] = model
            return model

    def update_model(
        self, project_id: str, model_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """UpdateModel: sets the fields ``body`` holds (already of their types); an ``id``
        other than the path's, or a name another model of the project has, is refused."""
        with self._lock:
            model = self.model(project_id, model_id)
            if body.get("id") and body["id"] != model_id:
                raise ApiError.invalid(f"model.id {body['id']!r} is not the path's {model_id}")
            name = body.get("name")
            if name is not None and not name:
                raise ApiError.invalid("model name may not be empty")
            if name and any(
                m["name"] == name and m["id"] != model_id for m in self.models_of(project_id)
            ):
                raise ApiError(409, f"a model named {name!r} already exists in this project")
            for key in ("name", "description", "visibility"):
                if body.get(key) is not None:
                    model[key] = body[key]
            for key in ("default_resources", "default_replication_policy"):
                if body.get(key):
                    model[key] = {**model[key], **body[key]}
            model["updated_at"] = iso(self.now(), millis=False)
            return model

    def models_of(self, project_id: str) -> list[dict[str, Any]]:
        self.project(project_id)
        with self._lock:
            models = list(self.models.values())
        return [m for m in models if m["project"]["public_identifier"] == project_id]

    def model(self, project_id: str, model_id: str) -> dict[str, Any]:
        model = self.models.get(model_id)
        if model is None or model["project"]["public_identifier"] != self.project(project_id)["id"]:
            raise ApiError.not_found("model", model_id)
        return model

    # -- builds ----------------------------------------------------------------------------

    def create_build(self, project_id: str, model_id: str, body: Mapping[str, Any]) -> BuildRecord:
        self.model(project_id, model_id)
        version_id = body.get("registered_model_version_id") or ""
        if not version_id:
            raise ApiError.invalid(
                "the emulator builds registered model versions only: "
                "registered_model_version_id is required"
            )
        runtime = body.get("runtime_identifier") or ""
        if runtime and runtime not in {r["image_identifier"] for r in self.runtimes}:
            raise ApiError.invalid(f"runtime not found: {runtime}")
        name, version, status = self.registry.find_version(version_id)
        if status != "REGISTERED":
            raise ApiError.precondition(
                f"registered model version {version_id} is {status}, not REGISTERED"
            )
        build_id = str(uuid.uuid4())
        fields = {
            "id": build_id,
            "model_id": model_id,
            "creator": self.user,
            "comment": body.get("comment") or "",
            "file_path": body.get("file_path") or "",
            "function_name": body.get("function_name") or "",
            "engine_image": "",
            "kernel": body.get("kernel") or "",
            "created_at": iso(self.now(), millis=False),
            "deletion_status": "",
            "crn": crn(build_id),
            "runtime_identifier": runtime,
            "runtime_addon_identifiers": list(body.get("runtime_addon_identifiers") or []),
            "registered_model_version_id": version_id,
            "model_root_dir": body.get("model_root_dir") or "",
            "build_script_path": body.get("build_script_path") or "",
        }
        record = self.lifecycle.start_build(
            project_id=project_id, fields=fields, mlflow_name=name, mlflow_version=version
        )
        with self._lock:
            self.builds[build_id] = record
        return record

    def builds_of(self, project_id: str, model_id: str) -> list[BuildRecord]:
        self.model(project_id, model_id)
        with self._lock:
            builds = list(self.builds.values())
        return [b for b in builds if b.fields["model_id"] == model_id]

    def build(self, project_id: str, model_id: str, build_id: str) -> BuildRecord:
        self.model(project_id, model_id)
        record = self.builds.get(build_id)
        if record is None or record.fields["model_id"] != model_id:
            raise ApiError.not_found("model build", build_id)
        return record

    # -- deployments -----------------------------------------------------------------------

    def create_deployment(
        self, project_id: str, model_id: str, build_id: str, body: Mapping[str, Any]
    ) -> DeploymentRecord:
        build = self.build(project_id, model_id, build_id)
        status = build.status(self.now())
        if status != "built":
            raise ApiError.precondition(f"model build {build_id} is {status!r}, not 'built'")
        cpu, memory = float(body.get("cpu") or 1.0), float(body.get("memory") or 2.0)
        gpus, replicas = int(body.get("nvidia_gpus") or 0), int(body.get("replicas") or 1)
        if cpu <= 0 or memory <= 0 or gpus < 0 or replicas < 1:
            raise ApiError.invalid("cpu and memory must be > 0, nvidia_gpus >= 0, replicas >= 1")
        deployment_id = str(uuid.uuid4())
        fields = {
            "project_id": project_id,
            "model_id": model_id,
            "build_id": build_id,
            "id": deployment_id,
            "cpu": cpu,
            "memory": memory,
            "nvidia_gpu": gpus,
            "environment": json.dumps(body.get("environment") or {}),
            "created_at": iso(self.now(), millis=False),
            "crn": crn(deployment_id),
            "deployer": self.user,
            "replicas": replicas,
        }
        record = self.lifecycle.start_deployment(fields, build)
        with self._lock:
            self.deployments[deployment_id] = record
        return record

    def deployments_of(
        self, project_id: str, model_id: str, build_id: str
    ) -> list[DeploymentRecord]:
        self.build(project_id, model_id, build_id)
        with self._lock:
            deployments = list(self.deployments.values())
        return [d for d in deployments if d.fields["build_id"] == build_id]

    def deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> DeploymentRecord:
        self.build(project_id, model_id, build_id)
        record = self.deployments.get(deployment_id)
        if record is None or record.fields["build_id"] != build_id:
            raise ApiError.not_found("model deployment", deployment_id)
        return record

    def serving(self, access_key: str) -> tuple[dict[str, Any] | None, DeploymentRecord | None]:
        """The model with ``access_key`` and its active deployment: the one that most recently
        became deployed and is still deployed (older ones stay up until stopped)."""
        with self._lock:
            models, deployments = list(self.models.values()), list(self.deployments.values())
        model = next((m for m in models if m["access_key"] == access_key), None)
        if model is None:
            return None, None
        now = self.now()
        live = [
            d
            for d in deployments
            if d.fields["model_id"] == model["id"] and d.timeline.status(now) == "deployed"
        ]
        live.sort(key=lambda d: d.timeline.reached_at("deployed", now) or 0.0)
        return model, (live[-1] if live else None)
