"""A bounded, spec-driven property test: schemathesis generates requests from the CML spec for
every operation the project uses, sends them to the emulator over HTTP (with real ids in the
paths, so the answers are not all 404) and checks each answer against the spec: never a 5xx,
a status and content type the spec allows, a body of the spec's response schema."""

from __future__ import annotations

import copy
import re
from typing import Any

import schemathesis
from cml_support import (
    API_KEY,
    PROJECT_ID,
    MlflowRuns,
    build_until_done,
    deploy_until_done,
    register_version,
)
from cml_swagger import Swagger
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from test_cml_conformance import OPERATIONS

from core.targets.cml import CMLClient
from core.targets.cml.models import CreateModelRequest
from emulators.cml import RunningEmulator

EXAMPLES = 3  # per operation: about sixty requests in all, a few seconds
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_generated_requests_get_answers_the_spec_allows(
    emulator: RunningEmulator, client: CMLClient, swagger: Swagger, mlflow_runs: MlflowRuns
) -> None:
    registered_id, version_id = register_version(
        client,
        project_id=PROJECT_ID,
        experiment_id=mlflow_runs.experiment_id,
        run_id=mlflow_runs.good_run_id,
        name="iris-fuzz",
    )
    model = client.create_model(
        CreateModelRequest(project_id=PROJECT_ID, name="iris-fuzz"), PROJECT_ID
    )
    assert model.id
    build, _ = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.id
    deployment, _ = deploy_until_done(client, PROJECT_ID, model.id, build.id)
    ids = {
        "project_id": PROJECT_ID,
        "model_id": model.id,
        "build_id": build.id,
        "deployment_id": deployment.id,
    }
    registry_ids = {"model_id": registered_id, "version_id": version_id}

    schema = schemathesis.openapi.from_dict(_without_dotted_names(swagger.doc)).include(
        operation_id=sorted(OPERATIONS | {"UpdateModel"})
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(OPERATIONS) + 1
    seen: dict[str, set[int]] = {}
    for operation in operations:
        names = set(re.findall(r"{([^}]+)}", operation.path))
        pinned = {**ids, **registry_ids} if "/registry/" in operation.path else ids
        strategy = operation.as_strategy(path_parameters={n: pinned[n] for n in names})

        seen[operation.label] = _fuzz(strategy, emulator.url)
    # real ids in the paths: reads of what exists succeed, not only refusals were checked
    for label in (
        "GET /api/v2/projects/{project_id}",
        "GET /api/v2/runtimes",
        "GET /api/v2/registry/models/{model_id}/versions/{version_id}",
    ):
        assert 200 in seen[label], (label, seen[label])


def _fuzz(strategy: Any, base_url: str) -> set[int]:
    """Sends EXAMPLES generated cases, checking each answer; the statuses answered."""
    statuses: set[int] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def exchange(case: Case) -> None:
        response = case.call(base_url=base_url, headers={"authorization": f"Bearer {API_KEY}"})
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    exchange()
    return statuses


def _without_dotted_names(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec with UpdateModel's path parameter ``{model.id}`` named ``{model_id}``: the
    same URLs, in a form schemathesis accepts (it refuses dots in path parameter names)."""
    doc = copy.deepcopy(doc)
    for path in [p for p in doc["paths"] if "{model.id}" in p]:
        item = doc["paths"].pop(path)
        for spec in item.values():
            for param in spec.get("parameters", []):
                if param["name"] == "model.id":
                    param["name"] = "model_id"
        renamed = path.replace("{model.id}", "{model_id}")
        doc["paths"][renamed] = {**doc["paths"].get(renamed, {}), **item}
    return doc
