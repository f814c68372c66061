"""Fixtures for the CML suite: a real MLflow registry, the emulator over real HTTP, a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import mlflow
import pytest
import sklearn
from cml_support import API_KEY, PROJECT_ID, MlflowRuns, RecordingTransport
from cml_swagger import SPEC_PATH, Swagger
from mlflow.models import Model
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from core.targets.cml import CMLClient
from emulators.cml import RunningEmulator, start_emulator


@pytest.fixture(scope="session")
def mlflow_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowRuns]:
    """An MLflow registry in SQLite with two runs logging an iris classifier: one intact, one
    whose pickled model was overwritten with garbage after logging."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.create_experiment(
            "cml-tests", artifact_location=(root / "artifacts").as_uri()
        )
        features, labels = load_iris(return_X_y=True, as_frame=True)
        classifier = LogisticRegression(max_iter=500).fit(features, labels)
        requirements = [f"scikit-learn=={sklearn.__version__}"]
        example = features.iloc[[0, 60, 120]]
        with mlflow.start_run(experiment_id=experiment_id) as good:
            mlflow.log_metric("accuracy", classifier.score(features, labels))
            mlflow.sklearn.log_model(
                classifier, name="model", input_example=example, pip_requirements=requirements
            )
        with mlflow.start_run(experiment_id=experiment_id) as broken:
            info = mlflow.sklearn.log_model(classifier, name="model", pip_requirements=requirements)
        location = mlflow.get_logged_model(info.model_id).artifact_location
        model_dir = Path(unquote(urlsplit(location).path))
        serialized = Model.load(model_dir).flavors["sklearn"]["pickled_model"]
        (model_dir / serialized).write_bytes(b"these bytes are no serialized model")
    finally:
        mlflow.set_tracking_uri(previous)
    yield MlflowRuns(
        tracking_uri=uri,
        experiment_id=experiment_id,
        good_run_id=good.info.run_id,
        broken_run_id=broken.info.run_id,
        example=example,
        expected=[int(p) for p in classifier.predict(example)],
    )


@pytest.fixture(scope="session")
def swagger() -> Swagger:
    """The vendored spec: always there, so no conformance check is ever skipped."""
    return Swagger(SPEC_PATH)


@pytest.fixture(scope="session")
def spec_or_none(swagger: Swagger) -> Swagger:
    """The spec under its former name, for tests that still ask whether it is there."""
    return swagger


@pytest.fixture
def emulator(mlflow_runs: MlflowRuns) -> Iterator[RunningEmulator]:
    """A fresh emulated workspace (projects "demo" and "other") over the shared registry."""
    running = start_emulator(
        tracking_uri=mlflow_runs.tracking_uri,
        api_key=API_KEY,
        projects=[{"name": "demo", "id": PROJECT_ID}, "other"],
    )
    yield running
    running.stop()


@pytest.fixture
def traffic() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(
    emulator: RunningEmulator, traffic: RecordingTransport, swagger: Swagger
) -> Iterator[CMLClient]:
    """A client over real HTTP; every exchange it makes is checked against the spec after."""
    with CMLClient(
        base_url=emulator.url, api_key=API_KEY, transport=traffic, retries=3, backoff=0.005
    ) as cml:
        yield cml
    problems = swagger.check_exchanges(traffic.exchanges)
    assert not problems, "traffic off the spec:\n" + "\n".join(problems)
