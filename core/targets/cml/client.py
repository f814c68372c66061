"""Typed client for the CML API v2 subset the bot uses.

Method names and argument order mirror ``cmlapi.CMLServiceApi`` (one method per operationId,
body first, then path parameters; optional query parameters keyword-only); a real ``cmlapi``
client is spoken to through ``CMLServiceAdapter`` (``service_api``), which offers the same
methods (``core.targets.cml.api.CMLApi``). Paths and fields follow the Swagger
spec; the wire work (auth, retries, error translation) lives in ``core.targets.cml.http``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from core.targets.cml.errors import CMLAPIError
from core.targets.cml.http import CMLHttp
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

SearchFilter = str | Mapping[str, Any]
"""A JSON object of field -> value, as a JSON string (as ``cmlapi`` takes it) or a mapping."""

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class CMLClient:
    """CML API v2 over HTTP with a bearer API key; every call retries transient failures."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
    ) -> None:
        self.base_url = _workspace_root(base_url)
        self._http = CMLHttp(
            base_url=self.base_url,
            api_key=api_key,
            transport=transport,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )

    def __repr__(self) -> str:
        return f"CMLClient(base_url={self.base_url!r})"

    def __enter__(self) -> CMLClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- projects ------------------------------------------------------------------------

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
        params = _list_params(search_filter, sort, page_size, page_token)
        params["include_public_projects"] = include_public_projects
        params["include_all_projects"] = include_all_projects
        return self._call(ListProjectsResponse, "GET", "/api/v2/projects", params=params)

    def get_project(self, project_id: str) -> Project:
        return self._call(Project, "GET", _path("projects", project_id))

    # -- registry ------------------------------------------------------------------------

    def list_registered_models(
        self,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListRegisteredModelsResponse:
        params = _list_params(search_filter, sort, page_size, page_token)
        return self._call(
            ListRegisteredModelsResponse, "GET", "/api/v2/registry/models", params=params
        )

    def get_registered_model(
        self,
        model_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> RegisteredModel:
        """The model with one page of its versions (``search_filter={"version_number": "3"}``)."""
        params = _list_params(search_filter, sort, page_size, page_token)
        path = _path("registry", "models", model_id)
        return self._call(RegisteredModel, "GET", path, params=params)

    def create_registered_model(self, body: CreateRegisteredModelRequest) -> RegisteredModel:
        """Registers a run's model as a new version (a new model if ``model_name`` is new)."""
        return self._call(RegisteredModel, "POST", "/api/v2/registry/models", body=body)

    def get_registered_model_version(
        self, model_id: str, version_id: str
    ) -> RegisteredModelVersion:
        path = _path("registry", "models", model_id, "versions", version_id)
        return self._call(RegisteredModelVersion, "GET", path)

    # -- models --------------------------------------------------------------------------

    def list_models(
        self,
        project_id: str,
        *,
        search_filter: SearchFilter | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelsResponse:
        params = _list_params(search_filter, sort, page_size, page_token)
        path = _path("projects", project_id, "models")
        return self._call(ListModelsResponse, "GET", path, params=params)

    def create_model(self, body: CreateModelRequest, project_id: str) -> Model:
        path = _path("projects", project_id, "models")
        return self._call(Model, "POST", path, body=body)

    def get_model(self, project_id: str, model_id: str) -> Model:
        return self._call(Model, "GET", _path("projects", project_id, "models", model_id))

    # -- builds --------------------------------------------------------------------------

    def create_model_build(
        self, body: CreateModelBuildRequest, project_id: str, model_id: str
    ) -> ModelBuild:
        path = _path("projects", project_id, "models", model_id, "builds")
        return self._call(ModelBuild, "POST", path, body=body)

    def get_model_build(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        *,
        registered_model_version_id: str | None = None,
    ) -> ModelBuild:
        path = _path("projects", project_id, "models", model_id, "builds", build_id)
        params = {"registered_model_version_id": registered_model_version_id}
        return self._call(ModelBuild, "GET", path, params=params)

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
        params = _list_params(search_filter, sort, page_size, page_token)
        path = _path("projects", project_id, "models", model_id, "builds")
        return self._call(ListModelBuildsResponse, "GET", path, params=params)

    # -- deployments ---------------------------------------------------------------------

    def create_model_deployment(
        self, body: CreateModelDeploymentRequest, project_id: str, model_id: str, build_id: str
    ) -> ModelDeployment:
        path = _deployments(project_id, model_id, build_id)
        return self._call(ModelDeployment, "POST", path, body=body)

    def get_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        path = _deployments(project_id, model_id, build_id, deployment_id)
        return self._call(ModelDeployment, "GET", path)

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
        params = _list_params(search_filter, sort, page_size, page_token)
        path = _deployments(project_id, model_id, build_id)
        return self._call(ListModelDeploymentsResponse, "GET", path, params=params)

    def stop_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        path = _deployments(project_id, model_id, build_id, deployment_id) + ":stop"
        return self._call(ModelDeployment, "POST", path)

    def restart_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        path = _deployments(project_id, model_id, build_id, deployment_id) + ":restart"
        return self._call(ModelDeployment, "POST", path)

    # -- runtimes ------------------------------------------------------------------------

    def list_runtimes(
        self,
        *,
        search_filter: SearchFilter | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        sort: str | None = None,
    ) -> ListRuntimesResponse:
        params = _list_params(search_filter, sort, page_size, page_token)
        return self._call(ListRuntimesResponse, "GET", "/api/v2/runtimes", params=params)

    # -- wire ----------------------------------------------------------------------------

    def _call(
        self,
        result: type[R],
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: BaseModel | None = None,
    ) -> R:
        payload = None if body is None else body.model_dump(mode="json", exclude_none=True)
        data = self._http.request(method, path, params=params, body=payload)
        try:
            return result.model_validate(data)
        except ValidationError as exc:
            raise CMLAPIError(
                f"CML answered {method} {path} with a body that is not a {result.__name__} "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                status_code=200,
                method=method,
                path=path,
            ) from None


class Page(Protocol[T_co]):
    """What every list response has: one page of items and the token of the next page."""

    @property
    def next_page_token(self) -> str | None: ...

    def page_items(self) -> Sequence[T_co]: ...


def iter_all(
    call: Callable[..., Page[T]], /, *args: Any, page_size: int = 100, **kwargs: Any
) -> Iterator[T]:
    """Every item of a paginated list call, page after page until the token comes back empty.

    Example: ``iter_all(client.list_models, project_id, search_filter={"name": "iris"})``.
    """
    token: str | None = None
    seen: set[str] = set()
    while True:
        page = call(*args, page_size=page_size, page_token=token, **kwargs)
        yield from page.page_items()
        token = page.next_page_token or None
        if token is None:
            return
        if token in seen:
            raise CMLAPIError(
                "CML returned a page token it had already given; stopped paging",
                status_code=200,
            )
        seen.add(token)


def _list_params(
    search_filter: SearchFilter | None, sort: str | None, page_size: int | None, token: str | None
) -> dict[str, Any]:
    if search_filter is not None and not isinstance(search_filter, str):
        search_filter = json.dumps(dict(search_filter), separators=(",", ":"))
    return {
        "search_filter": search_filter,
        "sort": sort,
        "page_size": page_size,
        "page_token": token,
    }


def _path(*segments: str) -> str:
    return "/api/v2/" + "/".join(quote(segment, safe="") for segment in segments)


def _deployments(project_id: str, model_id: str, build_id: str, *deployment_id: str) -> str:
    return _path(
        "projects",
        project_id,
        "models",
        model_id,
        "builds",
        build_id,
        "deployments",
        *deployment_id,
    )


def _workspace_root(url: str) -> str:
    root = url.rstrip("/")
    for suffix in ("/api/v2", "/api/v1"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root
