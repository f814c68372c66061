"""The emulator answers as CML's gateway does: the key first on every route, JSON
``runtimeError`` bodies, typed request fields, UpdateModel and the documented sort keys."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cml_support import API_KEY, PROJECT_ID, MlflowRuns, register_version
from cml_swagger import Swagger

from core.targets.cml import CMLClient
from emulators.cml import RunningEmulator

GOOD = {"authorization": f"Bearer {API_KEY}"}
BAD = {"authorization": "Bearer not-the-key"}
MODELS = f"/api/v2/projects/{PROJECT_ID}/models"


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url) as client:
        yield client


def _error(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code", "message", "details"}
    assert body["code"] == code
    return str(body["message"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/no/such/route"),
        ("DELETE", f"{MODELS}/some-model"),  # a path served, with a method it is not
        ("GET", "/api/v2/projects"),
        ("POST", MODELS),
    ],
)
def test_a_bad_key_is_answered_401_on_every_route_before_anything_else(
    http: httpx.Client, method: str, path: str
) -> None:
    # a body that is not even JSON: the key is checked before the body is read
    response = http.request(method, path, headers=BAD, content=b"{not json")
    _error(response, 401, 16)


def test_unknown_routes_and_methods_answer_json_errors(http: httpx.Client) -> None:
    assert _error(http.get("/api/v2/no/such/route", headers=GOOD), 404, 5) == "Not Found"
    wrong_method = http.delete(f"{MODELS}/some-model", headers=GOOD)
    assert _error(wrong_method, 501, 12) == "Method Not Allowed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"project_id": PROJECT_ID, "name": 5}, "name"),
        (
            {"project_id": PROJECT_ID, "name": "iris", "disable_authentication": "yes"},
            "disable_authentication",
        ),
        ({"project_id": PROJECT_ID, "name": "iris", "run_as": 2.5}, "run_as"),
        (
            {"project_id": PROJECT_ID, "name": "iris", "auto_deployment_config": {"cpu": "x"}},
            "auto_deployment_config.cpu",
        ),
        (["not", "an", "object"], "the body"),
    ],
)
def test_a_wrongly_typed_field_is_refused_and_nothing_is_stored(
    http: httpx.Client, body: object, field: str
) -> None:
    message = _error(http.post(MODELS, headers=GOOD, json=body), 400, 3)
    assert message.startswith(f"invalid value for {field}: expected ")
    assert http.get(MODELS, headers=GOOD).json()["models"] == []


def test_numbers_given_as_strings_are_read_as_the_gateway_reads_them(
    http: httpx.Client, swagger: Swagger
) -> None:
    created = http.post(MODELS, headers=GOOD, json={"project_id": PROJECT_ID, "name": "iris"})
    model_id = created.json()["id"]
    update = {
        "default_resources": {"cpu_millicores": 2000},
        "default_replication_policy": {"num_replicas": "3"},
        "description": "served by chatops",
    }
    answer = http.patch(f"{MODELS}/{model_id}", headers=GOOD, json=update)
    assert answer.status_code == 200, answer.text
    assert swagger.check_response(swagger.operation("UpdateModel"), 200, answer.content) == []
    stored = http.get(f"{MODELS}/{model_id}", headers=GOOD).json()
    assert stored["default_resources"]["cpu_millicores"] == "2000"  # int64: a string
    assert stored["default_replication_policy"]["num_replicas"] == "3"
    assert stored["description"] == "served by chatops"


def test_update_model_refuses_what_cml_refuses(http: httpx.Client) -> None:
    ids = [
        http.post(MODELS, headers=GOOD, json={"project_id": PROJECT_ID, "name": name}).json()["id"]
        for name in ("iris", "wine")
    ]
    taken = http.patch(f"{MODELS}/{ids[1]}", headers=GOOD, json={"name": "iris"})
    assert "already exists" in _error(taken, 409, 6)
    typed = http.patch(f"{MODELS}/{ids[1]}", headers=GOOD, json={"visibility": ["public"]})
    _error(typed, 400, 3)
    other = http.patch(f"{MODELS}/{ids[1]}", headers=GOOD, json={"id": ids[0]})
    _error(other, 400, 3)
    missing = http.patch(f"{MODELS}/no-such-model", headers=GOOD, json={"description": "x"})
    _error(missing, 404, 5)
    assert http.get(f"{MODELS}/{ids[1]}", headers=GOOD).json()["name"] == "wine"


def test_a_typed_query_parameter_is_checked(http: httpx.Client) -> None:
    _error(http.get(MODELS, headers=GOOD, params={"page_size": "ten"}), 400, 3)
    _error(
        http.get("/api/v2/projects", headers=GOOD, params={"include_public_projects": "maybe"}),
        400,
        3,
    )
    assert (
        http.get(
            "/api/v2/projects", headers=GOOD, params={"include_public_projects": "true"}
        ).status_code
        == 200
    )


def test_registered_versions_sort_by_the_documented_versions_key(
    client: CMLClient, mlflow_runs: MlflowRuns
) -> None:
    for _ in range(3):
        model_id, _ = register_version(
            client,
            project_id=PROJECT_ID,
            experiment_id=mlflow_runs.experiment_id,
            run_id=mlflow_runs.good_run_id,
            name="iris-sorted",
        )
    newest_first = client.get_registered_model(model_id, sort="-versions", page_size=10)
    numbers = [v.number for v in newest_first.model_versions or []]
    assert numbers == sorted(numbers, reverse=True)
    assert len(numbers) >= 3
    oldest_first = client.get_registered_model(model_id, sort="versions", page_size=10)
    assert [v.number for v in oldest_first.model_versions or []] == sorted(numbers)
