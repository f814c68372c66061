"""Listing: every page is reached, search_filter matches exactly, sort orders as asked."""

from __future__ import annotations

import pytest
from cml_support import PROJECT_ID, MlflowRuns, RecordingTransport, register_version

from core.targets.cml import CMLAPIError, CMLClient, iter_all
from core.targets.cml.models import CreateModelRequest


def _models(client: CMLClient, *names: str, auth: bool = True) -> list[str]:
    ids = []
    for name in names:
        body = CreateModelRequest(name=name, disable_authentication=not auth)
        model = client.create_model(body, PROJECT_ID)
        assert model.id
        ids.append(model.id)
    return ids


def test_iter_all_reaches_models_beyond_the_first_page(
    client: CMLClient, traffic: RecordingTransport
) -> None:
    created = _models(client, *(f"model-{i:02d}" for i in range(23)))

    first = client.list_models(PROJECT_ID)
    assert len(first.models) < 23 and first.next_page_token

    listed = list(iter_all(client.list_models, PROJECT_ID, page_size=5))

    assert sorted(m.id or "" for m in listed) == sorted(created)
    assert traffic.count("GET", f"/projects/{PROJECT_ID}/models") == 1 + 5


def test_search_filter_matches_whole_values_only(client: CMLClient) -> None:
    _models(client, "iris", "iris-canary")
    _models(client, "wine", auth=False)

    by_name = client.list_models(PROJECT_ID, search_filter={"name": "iris"})
    as_json_text = client.list_models(PROJECT_ID, search_filter='{"name": "iris-canary"}')
    without_auth = client.list_models(PROJECT_ID, search_filter={"auth_enabled": "f"})

    assert [m.name for m in by_name.models] == ["iris"]
    assert [m.name for m in as_json_text.models] == ["iris-canary"]
    assert [m.name for m in without_auth.models] == ["wine"]
    other = client.list_projects(search_filter={"name": "other"})
    assert [p.name for p in other.projects] == ["other"]


def test_sort_orders_by_the_named_field_either_way(client: CMLClient) -> None:
    _models(client, "bravo", "alpha", "charlie")

    newest_first = client.list_models(PROJECT_ID, sort="-created_at")
    by_name = client.list_models(PROJECT_ID, sort="+name")
    runtimes = client.list_runtimes(search_filter={"kernel": "Python 3.11"}, sort="-editor")

    assert [m.name for m in newest_first.models] == ["charlie", "alpha", "bravo"]
    assert [m.name for m in by_name.models] == ["alpha", "bravo", "charlie"]
    assert {r.kernel for r in runtimes.runtimes} == {"Python 3.11"}
    editors = [r.editor or "" for r in runtimes.runtimes]
    assert editors == sorted(editors, reverse=True) and len(editors) == 2


def test_an_unsupported_filter_key_is_refused_with_cmls_reason(client: CMLClient) -> None:
    with pytest.raises(CMLAPIError) as refused:
        client.list_models(PROJECT_ID, search_filter={"colour": "blue"})

    assert refused.value.status_code == 400
    assert "unsupported search filter key 'colour'" in refused.value.cml_message


def test_registry_lists_filter_by_name_and_page_through_versions(
    client: CMLClient, mlflow_runs: MlflowRuns
) -> None:
    for _ in range(3):
        model_id, _ = register_version(
            client,
            project_id=PROJECT_ID,
            experiment_id=mlflow_runs.experiment_id,
            run_id=mlflow_runs.good_run_id,
            name="iris-versions",
        )

    named = client.list_registered_models(search_filter={"model_name": "iris-versions"})
    versions = list(
        iter_all(client.get_registered_model, model_id, page_size=2, sort="-created_at")
    )
    third = client.get_registered_model(model_id, search_filter={"version_number": "3"})

    assert [(m.name, m.count) for m in named.models] == [("iris-versions", 3)]
    assert [v.number for v in versions] == [3, 2, 1]
    assert [v.number for v in third.model_versions] == [3]
    assert third.model_versions[0].model_version_metadata
    metadata = third.model_versions[0].model_version_metadata.mlflow_metadata
    assert metadata and metadata.run_id == mlflow_runs.good_run_id
    assert [m.key for m in metadata.metrics] == ["accuracy"]
