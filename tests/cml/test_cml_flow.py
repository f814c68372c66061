"""From a registered MLflow run to real predictions at /model, through the CML API."""

from __future__ import annotations

import httpx
import pytest
from cml_support import (
    API_KEY,
    PROJECT_ID,
    MlflowRuns,
    build_until_done,
    deploy_until_done,
    register_version,
    wait_for,
)

from core.targets.cml import CMLAPIError, CMLClient
from core.targets.cml.models import (
    BuildStatus,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    CreateRegisteredModelRequest,
    DeploymentStatus,
    Model,
    RegisteredModel,
)
from emulators.cml import RunningEmulator


def _predict(
    emulator: RunningEmulator, model: Model, runs: MlflowRuns, **headers: str
) -> httpx.Response:
    request = {"dataframe_split": runs.example.to_dict(orient="split")}
    payload = {"accessKey": model.access_key, "request": request}
    return httpx.post(emulator.model_url, json=payload, headers=headers, timeout=10)


def _new_model(
    client: CMLClient, runs: MlflowRuns, name: str, *, auth: bool = False
) -> tuple[Model, str]:
    registered_id, version_id = register_version(
        client,
        project_id=PROJECT_ID,
        experiment_id=runs.experiment_id,
        run_id=runs.good_run_id,
        name=name,
    )
    body = CreateModelRequest(
        project_id=PROJECT_ID,
        name=name,
        registered_model_id=registered_id,
        disable_authentication=not auth,
    )
    return client.create_model(body, PROJECT_ID), version_id


def test_registered_run_is_built_deployed_and_serves_its_real_predictions(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    model, version_id = _new_model(client, mlflow_runs, "iris-flow")
    assert model.id and model.access_key

    build, build_statuses = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.status == BuildStatus.BUILT
    order = [BuildStatus.PENDING, BuildStatus.QUEUED, BuildStatus.PUSHING, BuildStatus.BUILT]
    assert build_statuses[0] == BuildStatus.PENDING
    assert [order.index(BuildStatus(s)) for s in build_statuses] == sorted(
        order.index(BuildStatus(s)) for s in build_statuses
    )
    assert build.built_at is not None and build.registered_model_version_id == version_id

    body = CreateModelDeploymentRequest(cpu=2, memory=4, replicas=2, environment={"MODE": "t"})
    assert build.id
    deployment, deploy_statuses = deploy_until_done(client, PROJECT_ID, model.id, build.id, body)
    assert deployment.status == DeploymentStatus.DEPLOYED
    assert deploy_statuses[0] == DeploymentStatus.PENDING
    assert set(deploy_statuses) <= {"pending", "deploying", "deployed"}
    assert (deployment.cpu, deployment.memory, deployment.replicas) == (2.0, 4.0, 2)

    answer = _predict(emulator, model, mlflow_runs)
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    assert answer.json()["response"]["prediction"] == mlflow_runs.expected
    assert answer.json()["response"]["model_deployment_crn"] == deployment.crn


def test_a_version_still_registering_cannot_be_built(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    emulator.timings.registration = 30.0
    registered = client.create_registered_model(
        CreateRegisteredModelRequest(
            experiment_id=mlflow_runs.experiment_id,
            run_id=mlflow_runs.good_run_id,
            model_path="model",
            model_name="iris-slow-registry",
        )
    )
    version = registered.model_versions[0]
    assert version.status == "REGISTERING"
    model = client.create_model(CreateModelRequest(name="iris-slow-registry"), PROJECT_ID)
    assert model.id and version.model_version_id

    with pytest.raises(CMLAPIError) as refused:
        body = CreateModelBuildRequest(registered_model_version_id=version.model_version_id)
        client.create_model_build(body, PROJECT_ID, model.id)
    assert refused.value.status_code == 400
    assert "REGISTERING" in str(refused.value)


def test_broken_artifacts_fail_the_build_with_the_load_error_in_its_log(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    _, version_id = register_version(
        client,
        project_id=PROJECT_ID,
        experiment_id=mlflow_runs.experiment_id,
        run_id=mlflow_runs.broken_run_id,
        name="iris-broken",
    )
    model = client.create_model(CreateModelRequest(name="iris-broken"), PROJECT_ID)
    assert model.id

    build, statuses = build_until_done(client, PROJECT_ID, model.id, version_id)

    assert build.status == BuildStatus.BUILD_FAILED
    assert BuildStatus.PUSHING not in statuses and BuildStatus.BUILT not in statuses
    log = httpx.get(f"{emulator.url}/_emulator/builds/{build.id}/log").json()["log"]
    assert log.startswith("could not load iris-broken version 1: ")
    assert build.id
    with pytest.raises(CMLAPIError, match="not 'built'"):
        client.create_model_deployment(
            CreateModelDeploymentRequest(cpu=1, memory=2), PROJECT_ID, model.id, build.id
        )


def test_switches_fail_or_time_out_builds_and_fail_deployments(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    model, version_id = _new_model(client, mlflow_runs, "iris-switches")
    assert model.id
    emulator.faults.fail_builds = True
    assert build_until_done(client, PROJECT_ID, model.id, version_id)[0].status == "build failed"
    emulator.faults.fail_builds, emulator.faults.timeout_builds = False, True
    assert build_until_done(client, PROJECT_ID, model.id, version_id)[0].status == "timedout"
    emulator.faults.timeout_builds = False
    build, _ = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.id and build.status == "built"

    emulator.faults.fail_deployments = True
    deployment, _ = deploy_until_done(client, PROJECT_ID, model.id, build.id)
    assert deployment.status == DeploymentStatus.FAILED
    assert _predict(emulator, model, mlflow_runs).status_code == 503

    emulator.faults.fail_deployments = False
    assert deployment.id
    client.restart_model_deployment(PROJECT_ID, model.id, build.id, deployment.id)
    wait_for(
        lambda: (
            client.get_model_deployment(
                PROJECT_ID, model.id or "", build.id or "", deployment.id or ""
            ).status
        ),
        lambda status: status == DeploymentStatus.DEPLOYED,
    )
    assert _predict(emulator, model, mlflow_runs).status_code == 200


def test_new_resources_roll_out_without_downtime_and_stopping_the_last_ends_serving(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    model, version_id = _new_model(client, mlflow_runs, "iris-scale")
    assert model.id
    build, _ = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.id
    old, _ = deploy_until_done(client, PROJECT_ID, model.id, build.id)
    assert old.id

    emulator.timings.deploying = 0.5
    bigger = CreateModelDeploymentRequest(cpu=4, memory=8, replicas=3)
    new = client.create_model_deployment(bigger, PROJECT_ID, model.id, build.id)
    assert new.id and new.status == DeploymentStatus.PENDING
    during = _predict(emulator, model, mlflow_runs)
    assert during.status_code == 200
    assert during.json()["response"]["model_deployment_crn"] == old.crn

    wait_for(
        lambda: (
            client.get_model_deployment(
                PROJECT_ID, model.id or "", build.id or "", new.id or ""
            ).status
        ),
        lambda status: status == DeploymentStatus.DEPLOYED,
    )
    after = _predict(emulator, model, mlflow_runs)
    assert after.json()["response"]["model_deployment_crn"] == new.crn

    stopped = client.stop_model_deployment(PROJECT_ID, model.id, build.id, old.id)
    assert stopped.status == DeploymentStatus.STOPPING
    wait_for(
        lambda: (
            client.get_model_deployment(
                PROJECT_ID, model.id or "", build.id or "", old.id or ""
            ).status
        ),
        lambda status: status == DeploymentStatus.STOPPED,
    )
    assert (
        _predict(emulator, model, mlflow_runs).json()["response"]["prediction"]
        == mlflow_runs.expected
    )
    live = client.list_model_deployments(
        PROJECT_ID, model.id, build.id, search_filter={"status": "deployed"}
    )
    assert [d.id for d in live.model_deployments] == [new.id]

    client.stop_model_deployment(PROJECT_ID, model.id, build.id, new.id)
    final, _ = wait_for(
        lambda: _predict(emulator, model, mlflow_runs).status_code, lambda code: code != 200
    )
    assert final == 503


def test_model_with_auth_enabled_requires_the_bearer_key(
    client: CMLClient, emulator: RunningEmulator, mlflow_runs: MlflowRuns
) -> None:
    model, version_id = _new_model(client, mlflow_runs, "iris-auth", auth=True)
    assert model.id and model.auth_enabled is True
    build, _ = build_until_done(client, PROJECT_ID, model.id, version_id)
    assert build.id
    deploy_until_done(client, PROJECT_ID, model.id, build.id)

    refused = _predict(emulator, model, mlflow_runs)
    assert refused.status_code == 401 and refused.json()["success"] is False
    served = _predict(emulator, model, mlflow_runs, Authorization=f"Bearer {API_KEY}")
    assert served.json()["response"]["prediction"] == mlflow_runs.expected


def test_quotes_in_a_model_path_or_name_are_answered_as_mlflow_reads_them(
    client: CMLClient, mlflow_runs: MlflowRuns
) -> None:
    def register(model_path: str, name: str) -> RegisteredModel:
        return client.create_registered_model(
            CreateRegisteredModelRequest(
                experiment_id=mlflow_runs.experiment_id,
                run_id=mlflow_runs.good_run_id,
                model_path=model_path,
                model_name=name,
            )
        )

    with pytest.raises(CMLAPIError) as refused:
        register("mod'el", "quoted-path")
    assert refused.value.status_code == 400  # not a 500 from MLflow's filter parser
    assert "no model at" in str(refused.value) and "mod'el" in str(refused.value)

    first = register("model", "o'brien")
    second = register("model", "o'brien")
    assert first.name == "o'brien" and second.model_versions[0].number == 2
    listed = client.get_registered_model(second.model_id or "").model_versions
    assert [v.number for v in listed] == [1, 2]
