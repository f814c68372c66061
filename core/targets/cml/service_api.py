"""The CML API through an installed `cmlapi` package (Cloudera's generated client).

`CMLServiceAdapter` offers the target what `CMLClient` does (see `core.targets.cml.api`)
over `cmlapi.CMLServiceApi`, built as cmlapi's own `default_client(url, key)` builds it:
`Configuration()` with `host`, an `ApiClient`, the default header `authorization: Bearer`.
How each call goes through it lives in `service_calls`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.errors import ConfigError
from core.targets.cml.calls import CallCounter
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
from core.targets.cml.service_calls import ServiceCalls
from core.targets.cml.session import load_cmlapi, workspace_root


class CMLServiceAdapter:
    """A `CMLApi` over `cmlapi.CMLServiceApi`; every request is counted on `calls`."""

    def __init__(
        self,
        *,
        service: Any,
        base_url: str,
        api_key: str,
        calls: CallCounter | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = workspace_root(base_url)
        self._service = service
        self._call = ServiceCalls(
            module=load_cmlapi(),
            service=service,
            api_key=api_key,
            calls=calls or CallCounter(),
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            sleep=sleep,
        ).call

    @classmethod
    def connect(cls, *, url: str, api_key: str, **options: Any) -> CMLServiceAdapter:
        """An adapter over a new `CMLServiceApi` of the workspace at `url`."""
        if not api_key or not api_key.isprintable() or any(c.isspace() for c in api_key):
            raise ConfigError("the CML API key is empty or holds whitespace or control characters")
        cmlapi = load_cmlapi()
        config = cmlapi.Configuration()
        config.host = workspace_root(url)
        # /status checks up to 32 endpoints at once; urllib3 would drop connections past 4
        config.connection_pool_maxsize = 64
        api_client = cmlapi.ApiClient(config)
        api_client.set_default_header("authorization", f"Bearer {api_key}")
        service = cmlapi.CMLServiceApi(api_client)
        return cls(service=service, base_url=url, api_key=api_key, **options)

    def __repr__(self) -> str:
        return f"CMLServiceAdapter(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def close(self) -> None:
        """Lets go of the client's thread pool and connections now. A swagger-codegen client
        made before `ApiClient.close` existed starts a thread pool when it is made and closes
        it only in `__del__`, which at interpreter exit fails on pipes already closed (a
        traceback on stderr): that pool is closed here, and a closed stand-in left for
        `__del__`."""
        api_client = getattr(self._service, "api_client", None)
        if api_client is None:
            return
        closer = getattr(api_client, "close", None)
        if callable(closer):
            closer()
        else:
            pool = vars(api_client).get("pool")
            if pool is not None and not isinstance(pool, _ClosedPool):
                pool.close()
                pool.join()
                api_client.pool = _ClosedPool()
        manager = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
        if manager is not None:
            manager.clear()

    # -- projects, registry ------------------------------------------------------------------
    def list_projects(
        self,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        include_public_projects: bool | None = None,
        include_all_projects: bool | None = None,
    ) -> ListProjectsResponse:
        return self._call(
            ListProjectsResponse,
            "list_projects",
            include_public_projects=include_public_projects,
            include_all_projects=include_all_projects,
            **_page(search_filter, sort, page_size, page_token),
        )

    def get_project(self, project_id: str) -> Project:
        return self._call(Project, "get_project", project_id)

    def list_registered_models(
        self,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListRegisteredModelsResponse:
        page = _page(search_filter, sort, page_size, page_token)
        return self._call(ListRegisteredModelsResponse, "list_registered_models", **page)

    def get_registered_model(
        self,
        model_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> RegisteredModel:
        page = _page(search_filter, sort, page_size, page_token)
        return self._call(RegisteredModel, "get_registered_model", model_id, **page)

    def create_registered_model(self, body: CreateRegisteredModelRequest) -> RegisteredModel:
        return self._call(RegisteredModel, "create_registered_model", body=body)

    def get_registered_model_version(
        self, model_id: str, version_id: str
    ) -> RegisteredModelVersion:
        ids = (model_id, version_id)
        return self._call(RegisteredModelVersion, "get_registered_model_version", *ids)

    # -- models, builds, deployments -----------------------------------------------------------
    def list_models(
        self,
        project_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelsResponse:
        page = _page(search_filter, sort, page_size, page_token)
        return self._call(ListModelsResponse, "list_models", project_id, **page)

    def create_model(self, body: CreateModelRequest, project_id: str) -> Model:
        return self._call(Model, "create_model", project_id, body=body)

    def get_model(self, project_id: str, model_id: str) -> Model:
        return self._call(Model, "get_model", project_id, model_id)

    def create_model_build(
        self, body: CreateModelBuildRequest, project_id: str, model_id: str
    ) -> ModelBuild:
        return self._call(ModelBuild, "create_model_build", project_id, model_id, body=body)

    def get_model_build(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        *,
        registered_model_version_id: str | None = None,
    ) -> ModelBuild:
        ids = (project_id, model_id, build_id)
        version = registered_model_version_id
        return self._call(ModelBuild, "get_model_build", *ids, registered_model_version_id=version)

    def list_model_builds(
        self,
        project_id: str,
        model_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelBuildsResponse:
        page = _page(search_filter, sort, page_size, page_token)
        ids = (project_id, model_id)
        return self._call(ListModelBuildsResponse, "list_model_builds", *ids, **page)

    def create_model_deployment(
        self, body: CreateModelDeploymentRequest, project_id: str, model_id: str, build_id: str
    ) -> ModelDeployment:
        ids = (project_id, model_id, build_id)
        return self._call(ModelDeployment, "create_model_deployment", *ids, body=body)

    def get_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        ids = (project_id, model_id, build_id, deployment_id)
        return self._call(ModelDeployment, "get_model_deployment", *ids)

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
    ) -> ListModelDeploymentsResponse:
        page = _page(search_filter, sort, page_size, page_token)
        ids = (project_id, model_id, build_id)
        return self._call(ListModelDeploymentsResponse, "list_model_deployments", *ids, **page)

    def stop_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        ids = (project_id, model_id, build_id, deployment_id)
        return self._call(ModelDeployment, "stop_model_deployment", *ids)

    def restart_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        ids = (project_id, model_id, build_id, deployment_id)
        return self._call(ModelDeployment, "restart_model_deployment", *ids)

    def list_runtimes(
        self,
        *,
        search_filter: SearchFilter | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        sort: str | None = None,
    ) -> ListRuntimesResponse:
        page = _page(search_filter, sort, page_size, page_token)
        return self._call(ListRuntimesResponse, "list_runtimes", **page)


class _ClosedPool:
    """What a closed client's `pool` is: closing it again does nothing."""

    def close(self) -> None:
        pass

    def join(self) -> None:
        pass


def _page(
    search_filter: SearchFilter | None, sort: str | None, size: int | None, token: str | None
) -> dict[str, Any]:
    return {"search_filter": search_filter, "sort": sort, "page_size": size, "page_token": token}
