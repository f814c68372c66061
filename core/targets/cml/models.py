"""Payloads of the CML API v2 subset the bot uses, named as in the Swagger definitions.

Responses ignore fields they do not know (a newer workspace may add some); requests forbid
them, so a typo fails when the body is built rather than as a 400 from the workspace.
Every field is optional because the gateway omits fields holding their zero value. int64
fields are strings on the wire (protobuf JSON), so they are strings here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class BuildStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PUSHING = "pushing"
    SUCCEEDED = "succeeded"
    BUILT = "built"
    BUILD_FAILED = "build failed"
    TIMEDOUT = "timedout"
    UNKNOWN = "unknown"


BUILD_TERMINAL = frozenset({BuildStatus.BUILT, BuildStatus.BUILD_FAILED, BuildStatus.TIMEDOUT})


class DeploymentStatus(StrEnum):
    PENDING = "pending"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


ROLLOUT_TERMINAL = frozenset(
    {DeploymentStatus.DEPLOYED, DeploymentStatus.FAILED, DeploymentStatus.STOPPED}
)


class RegisteredVersionStatus(StrEnum):
    """Not stated by the spec; the values the emulator reports (and the bot polls for)."""

    REGISTERING = "REGISTERING"
    REGISTERED = "REGISTERED"
    FAILED = "FAILED"


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ErrorBody(_Response):
    """The spec's ``runtimeError``: the body of every non-2xx answer."""

    error: str | None = None
    code: int | None = None
    message: str | None = None


class ShortUser(_Response):
    username: str | None = None
    name: str | None = None
    email: str | None = None


class ShortProject(_Response):
    public_identifier: str | None = None
    name: str | None = None
    default_project_engine: str | None = None
    slug: str | None = None


class Tag(_Response):
    key: str | None = None
    value: str | None = None


# -- projects ------------------------------------------------------------------------------


class Project(_Response):
    id: str | None = None
    name: str | None = None
    owner: ShortUser | None = None
    creator: ShortUser | None = None
    description: str | None = None
    visibility: str | None = None
    default_engine_type: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    creation_status: str | None = None
    slug: str | None = None


class ListProjectsResponse(_Response):
    projects: list[Project] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[Project]:
        return self.projects


# -- registry ------------------------------------------------------------------------------


class Metric(_Response):
    key: str | None = None
    value: float | None = None
    timestamp: datetime | None = None
    step: str | None = None


class MLflowMetadata(_Response):
    experiment_id: str | None = None
    run_id: str | None = None
    metrics: list[Metric] = []
    params: list[Tag] = []
    tags: list[Tag] = []


class ModelVersionMetadata(_Response):
    mlops_type: str | None = None
    tags: list[Tag] = []
    workspace_url: str | None = None
    project_id: str | None = None
    owner: ShortUser | None = None
    mlflow_metadata: MLflowMetadata | None = None


class RegisteredModelVersion(_Response):
    model_id: str | None = None
    model_version_id: str | None = None
    version_name: str | None = None
    number: int | None = None
    notes: str | None = None
    user: ShortUser | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None
    model_version_metadata: ModelVersionMetadata | None = None
    tags: list[Tag] = []
    error_message: str | None = None


class RegisteredModel(_Response):
    """One registered model; ``model_versions`` is one page (see ``next_page_token``)."""

    model_id: str | None = None
    name: str | None = None
    description: str | None = None
    owner: ShortUser | None = None
    permission: str | None = None
    visibility: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    count: int | None = None
    model_versions: list[RegisteredModelVersion] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[RegisteredModelVersion]:
        return self.model_versions


class RegisteredModelDetails(_Response):
    model_id: str | None = None
    name: str | None = None
    description: str | None = None
    owner: ShortUser | None = None
    permission: str | None = None
    visibility: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    count: int | None = None


class ListRegisteredModelsResponse(_Response):
    models: list[RegisteredModelDetails] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[RegisteredModelDetails]:
        return self.models


class CreateRegisteredModelRequest(_Request):
    project_id: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    tags: list[Tag] | None = None
    description: str | None = None
    notes: str | None = None
    visibility: str | None = None


# -- models, builds, deployments -----------------------------------------------------------


class DefaultResources(_Response):
    cpu_millicores: str | None = None
    memory_mb: str | None = None
    nvidia_gpus: str | None = None


class DefaultReplicationPolicy(_Response):
    num_replicas: str | None = None
    type: str | None = None


class Model(_Response):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    creator: ShortUser | None = None
    access_key: str | None = None
    deletion_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    crn: str | None = None
    auth_enabled: bool | None = None
    project: ShortProject | None = None
    registered_model_id: str | None = None
    visibility: str | None = None
    default_resources: DefaultResources | None = None
    default_replication_policy: DefaultReplicationPolicy | None = None


class ListModelsResponse(_Response):
    models: list[Model] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[Model]:
        return self.models


class CreateModelRequest(_Request):
    project_id: str | None = None
    name: str | None = None
    description: str | None = None
    disable_authentication: bool | None = None
    registered_model_id: str | None = None
    run_as: int | None = None
    visibility: str | None = None


class ModelBuild(_Response):
    id: str | None = None
    model_id: str | None = None
    creator: ShortUser | None = None
    comment: str | None = None
    file_path: str | None = None
    function_name: str | None = None
    engine_image: str | None = None
    kernel: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None
    deletion_status: str | None = None
    crn: str | None = None
    built_at: datetime | None = None
    runtime_identifier: str | None = None
    runtime_addon_identifiers: list[str] = []
    registered_model_version_id: str | None = None
    model_root_dir: str | None = None
    build_script_path: str | None = None


class ListModelBuildsResponse(_Response):
    model_builds: list[ModelBuild] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[ModelBuild]:
        return self.model_builds


class CreateModelBuildRequest(_Request):
    project_id: str | None = None
    model_id: str | None = None
    comment: str | None = None
    file_path: str | None = None
    function_name: str | None = None
    kernel: str | None = None
    runtime_identifier: str | None = None
    runtime_addon_identifiers: list[str] | None = None
    registered_model_version_id: str | None = None
    model_root_dir: str | None = None
    build_script_path: str | None = None


class ModelDeployment(_Response):
    """Note the spec's asymmetry: ``nvidia_gpu`` here, ``nvidia_gpus`` in the request."""

    project_id: str | None = None
    model_id: str | None = None
    build_id: str | None = None
    id: str | None = None
    cpu: float | None = None
    memory: float | None = None
    nvidia_gpu: int | None = None
    environment: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    stopped_at: datetime | None = None
    crn: str | None = None
    deployer: ShortUser | None = None
    status: str | None = None
    replicas: int | None = None


class ListModelDeploymentsResponse(_Response):
    model_deployments: list[ModelDeployment] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[ModelDeployment]:
        return self.model_deployments


class CreateModelDeploymentRequest(_Request):
    """Resources (vCPU, memory in GB, GPUs, replicas) belong to the deployment."""

    project_id: str | None = None
    model_id: str | None = None
    build_id: str | None = None
    cpu: float | None = None
    memory: float | None = None
    nvidia_gpus: int | None = None
    environment: dict[str, str] | None = None
    replicas: int | None = None


# -- runtimes ------------------------------------------------------------------------------


class Runtime(_Response):
    image_identifier: str | None = None
    editor: str | None = None
    kernel: str | None = None
    edition: str | None = None
    description: str | None = None
    full_version: str | None = None
    status: str | None = None


class ListRuntimesResponse(_Response):
    runtimes: list[Runtime] = []
    next_page_token: str | None = None

    def page_items(self) -> Sequence[Runtime]:
        return self.runtimes
