"""What the CML target asks of a CML API v2 client: the operations it uses, typed.

Two clients offer it: `CMLClient` (ours, over httpx) and `CMLServiceAdapter` (over an
installed `cmlapi` package). Both answer with the payloads of `core.targets.cml.models` and
raise the errors of `core.targets.cml.errors`; the steps never know which one they hold.
"""

from __future__ import annotations

from typing import Protocol

from core.targets.cml.client import SearchFilter
from core.targets.cml.models import (
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    CreateRegisteredModelRequest,
    ListModelBuildsResponse,
    ListModelDeploymentsResponse,
    ListModelsResponse,
    ListProjectsResponse,
    ListRegisteredModelsResponse,
    ListRuntimesResponse,
    Model,
    ModelBuild,
    ModelDeployment,
    Project,
    RegisteredModel,
    RegisteredModelVersion,
)


class CMLApi(Protocol):
    """One CML workspace; `base_url` is its root (no `/api/v2`), named in error texts."""

    @property
    def base_url(self) -> str: ...

    def close(self) -> None: ...

    def list_projects(
        self,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        include_public_projects: bool | None = None,
        include_all_projects: bool | None = None,
    ) -> ListProjectsResponse: ...

    def get_project(self, project_id: str) -> Project: ...

    def list_registered_models(
        self,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListRegisteredModelsResponse: ...

    def get_registered_model(
        self,
        model_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> RegisteredModel: ...

    def create_registered_model(self, body: CreateRegisteredModelRequest) -> RegisteredModel: ...

    def get_registered_model_version(
        self, model_id: str, version_id: str
    ) -> RegisteredModelVersion: ...

    def list_models(
        self,
        project_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelsResponse: ...

    def create_model(self, body: CreateModelRequest, project_id: str) -> Model: ...

    def get_model(self, project_id: str, model_id: str) -> Model: ...

    def create_model_build(
        self, body: CreateModelBuildRequest, project_id: str, model_id: str
    ) -> ModelBuild: ...

    def get_model_build(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        *,
        registered_model_version_id: str | None = None,
    ) -> ModelBuild: ...

    def list_model_builds(
        self,
        project_id: str,
        model_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelBuildsResponse: ...

    def create_model_deployment(
        self, body: CreateModelDeploymentRequest, project_id: str, model_id: str, build_id: str
    ) -> ModelDeployment: ...

    def get_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment: ...

    def list_model_deployments(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        *,
        search_filter: SearchFilter | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        sort: str | None = None,
    ) -> ListModelDeploymentsResponse: ...

    def stop_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment: ...

    def restart_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment: ...

    def list_runtimes(
        self,
        *,
        search_filter: SearchFilter | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        sort: str | None = None,
    ) -> ListRuntimesResponse: ...
