"""The client and the emulator both speak the CML API v2 as the Swagger spec describes it."""

from __future__ import annotations

import inspect
import json
import re

import httpx
import pytest
from cml_support import (
    PROJECT_ID,
    MlflowRuns,
    RecordingTransport,
    build_until_done,
    deploy_until_done,
    register_version,
)
from cml_swagger import Swagger

from core.targets.cml import CMLClient, CMLNotFound
from core.targets.cml.models import CreateModelDeploymentRequest, CreateModelRequest

OPERATIONS = {
    "ListProjects",
    "GetProject",
    "ListRegisteredModels",
    "GetRegisteredModel",
    "CreateRegisteredModel",
    "GetRegisteredModelVersion",
    "ListModels",
    "CreateModel",
    "GetModel",
    "CreateModelBuild",
    "GetModelBuild",
    "ListModelBuilds",
    "CreateModelDeployment",
    "GetModelDeployment",
    "ListModelDeployments",
    "StopModelDeployment",
    "RestartModelDeployment",
    "ListRuntimes",
}


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


def test_every_operation_sends_and_receives_what_the_spec_defines(
    client: CMLClient, traffic: RecordingTransport, swagger: Swagger, mlflow_runs: MlflowRuns
) -> None:
    client.list_projects(
        search_filter={"name": "demo"},
        sort="-created_at",
        page_size=5,
        include_public_projects=True,
        include_all_projects=False,
    )
    client.get_project(PROJECT_ID)
    registered_id, version_id = register_version(
        client,
        project_id=PROJECT_ID,
        experiment_id=mlflow_runs.experiment_id,
        run_id=mlflow_runs.good_run_id,
        name="iris-conformance",
    )
    client.list_registered_models(search_filter={"model_name": "iris-conformance"}, sort="name")
    client.get_registered_model(registered_id, search_filter={"version_number": "1"}, page_size=2)
    runtime = client.list_runtimes(search_filter={"kernel": "Python 3.11"}, sort="-editor")
    assert runtime.runtimes
    model = client.create_model(
        CreateModelRequest(
            project_id=PROJECT_ID,
            name="iris-conformance",
            description="conformance",
            registered_model_id=registered_id,
            disable_authentication=True,
            visibility="private",
        ),
        PROJECT_ID,
    )
    assert model.id
    client.list_models(PROJECT_ID, search_filter={"name": "iris-conformance"}, sort="name")
    client.get_model(PROJECT_ID, model.id)
    build, _ = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.id
    client.get_model_build(PROJECT_ID, model.id, build.id, registered_model_version_id=version_id)
    client.list_model_builds(
        PROJECT_ID, model.id, search_filter={"status": "built"}, sort="-created_at"
    )
    body = CreateModelDeploymentRequest(
        project_id=PROJECT_ID,
        model_id=model.id,
        build_id=build.id,
        cpu=0.5,
        memory=1.5,
        nvidia_gpus=0,
        replicas=2,
        environment={"LOG_LEVEL": "info"},
    )
    deployment, _ = deploy_until_done(client, PROJECT_ID, model.id, build.id, body)
    assert deployment.id
    client.list_model_deployments(PROJECT_ID, model.id, build.id, page_size=1, sort="-created_at")
    client.restart_model_deployment(PROJECT_ID, model.id, build.id, deployment.id)
    client.stop_model_deployment(PROJECT_ID, model.id, build.id, deployment.id)
    with pytest.raises(CMLNotFound):
        client.get_model(PROJECT_ID, "no-such-model")

    problems = swagger.check_exchanges(traffic.exchanges)
    assert problems == []
    used = [swagger.match(e.method, httpx.URL(e.url).path) for e in traffic.exchanges]
    assert {op.operation_id for op in used if op} == OPERATIONS
    assert any(e.status == 404 for e in traffic.exchanges)


def test_client_methods_mirror_cmlapi_names_and_argument_order(swagger: Swagger) -> None:
    for operation_id in sorted(OPERATIONS):
        op = swagger.operation(operation_id)
        method = getattr(CMLClient, _snake(operation_id))
        params = list(inspect.signature(method).parameters.values())[1:]
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        keywords = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        path_names = re.findall(r"\{([^}]+)\}", op.template)
        expected = (["body"] if op.params("body") else []) + path_names
        assert positional == expected, operation_id
        assert keywords == set(op.params("query")), operation_id


def test_the_check_rejects_a_field_or_parameter_the_spec_does_not_know(
    client: CMLClient, traffic: RecordingTransport, swagger: Swagger
) -> None:
    client.get_project(PROJECT_ID)
    exchange = traffic.exchanges[-1]
    op, errors = swagger.check_request("GET", exchange.url + "?colour=blue", b"")
    assert op is not None and errors == [
        "GetProject request: query parameter 'colour' is not in the spec"
    ]
    answer = {**json.loads(exchange.response_body), "colour": "blue"}
    assert swagger.check_response(op, 200, json.dumps(answer).encode()) == [
        "GetProject response 200 (Project): field 'colour' is not in the spec"
    ]
    assert swagger.check_response(op, 200, b'{"created_at": 12}') != []
