"""A version's evaluation dataset as its run logged it, read from a real MLflow registry: a
dataset input with the context `evaluation` (a JSON table or a CSV file), else a logged table
named `eval…`; shaped as the input example is; every way it cannot be read says why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.data.pandas_dataset import from_pandas

from core.errors import RegistryError
from core.predictions import Measured, quality, storable
from core.registry import evaluation
from core.registry.mlflow import Registry
from core.versions import ModelVersion

EXAMPLE = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.0]]}}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    return Registry(tracking_uri=uri)


def version_of(run_id: str) -> ModelVersion:
    return ModelVersion("m", 3, "src", run_id, "READY", datetime.now(UTC))


def a_run(registry: Registry, log) -> ModelVersion:  # type: ignore[no-untyped-def]
    mlflow.set_tracking_uri(registry.tracking_uri)
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("e").experiment_id) as run:
        log()
    return version_of(run.info.run_id)


def test_a_dataset_logged_for_evaluation_is_read_in_the_examples_columns_and_types(
    registry: Registry,
) -> None:
    frame = pd.DataFrame({"b": [1, 2, 3], "a": [0.5, 1.5, 2.5], "kind": ["x", "y", "x"]})

    def log() -> None:
        mlflow.log_table(frame, "tables/holdout.json")
        mlflow.log_input(from_pandas(frame, name="training"), context="training")
        dataset = from_pandas(
            frame, source=mlflow.get_artifact_uri("tables/holdout.json"), name="holdout"
        )
        mlflow.log_input(dataset, context="evaluation")

    mv = a_run(registry, log)
    found = evaluation.logged(registry, mv)
    assert found is not None and found.name == "holdout" and found.rows == 3
    assert found.described() == "evaluation dataset `holdout` (3 rows)"
    read = evaluation.read(registry, found, EXAMPLE)
    assert read.columns == ("a", "b")  # the example's order: what the model takes
    assert read.rows == ((0.5, 1.0), (1.5, 2.0), (2.5, 3.0))  # b as floats, as the example
    assert isinstance(read.rows[0][1], float)
    assert (read.target, read.targets) == ("kind", ("x", "y", "x"))
    assert read.described() == "evaluation dataset `holdout` (3 rows, target `kind`)"
    assert read.bodies() == [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]]}}
    ]


def test_a_csv_file_named_as_the_datasets_source_is_read(
    registry: Registry, tmp_path: Path
) -> None:
    csv = tmp_path / "eval.csv"
    csv.write_text("a,b,label,note\n1,2,0,n\n3.5,4,1,m\n")
    frame = pd.read_csv(csv)

    def log() -> None:
        mlflow.log_artifact(str(csv))
        source = mlflow.get_artifact_uri("eval.csv")
        mlflow.log_input(from_pandas(frame, source=source, name="csv"), context="evaluation")

    found = evaluation.logged(registry, a_run(registry, log))
    assert found is not None
    read = evaluation.read(registry, found, EXAMPLE)
    assert read.rows == ((1.0, 2.0), (3.5, 4.0))
    assert (read.target, read.targets) == ("label", (0, 1))  # two left over: the one so named


def test_else_a_logged_table_named_eval_and_the_rows_scored_are_bounded(
    registry: Registry,
) -> None:
    frame = pd.DataFrame({"a": [float(i) for i in range(1200)], "b": 1.0, "y": 0})

    def log() -> None:
        mlflow.log_table(frame.head(2), "predictions.json")  # not named for evaluation
        mlflow.log_table(frame, "evaluation/iris.json")

    mv = a_run(registry, log)
    found = evaluation.logged(registry, mv)
    assert found is not None and found.uri == f"runs:/{mv.run_id}/evaluation/iris.json"
    read = evaluation.read(registry, found, EXAMPLE)
    assert len(read.rows) == evaluation.MAX_ROWS and read.total == 1200
    assert read.described() == (
        "evaluation dataset `evaluation/iris.json` (the first 1,000 of 1,200 rows, target `y`)"
    )
    assert [len(b["dataframe_split"]["data"]) for b in read.bodies()] == [250] * 4


def test_a_run_that_logged_none_has_none(registry: Registry) -> None:
    def log() -> None:
        mlflow.log_table(pd.DataFrame({"a": [1]}), "results.json")

    assert evaluation.logged(registry, a_run(registry, log)) is None
    assert evaluation.logged(registry, version_of("")) is None  # no run at all


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        ('{"columns": ["a"], "data": [[1]]}', "e.json", "lacks the model's input column(s) `b`"),
        ('{"columns": ["a", "b"], "data": []}', "e.json", "has no rows"),
        ('{"rows": 3}', "e.json", "is no table: a JSON table has `columns` and `data`"),
        ("a,b\n1,2,3\n", "e.csv", "is no table"),
        ("PAR1", "e.parquet", "is a .parquet: the prediction diff reads JSON tables"),
        ("[[1, 2, 3]]", "e.json", "is no table"),  # rows, not records
        ("[" * 100_000 + "]" * 100_000, "e.json", "is no table"),  # nested past recursion
        ('{"columns": "ab", "data": [["x", "y"]]}', "e.json", "is no table"),
        ('{"columns": ["a", "a"], "data": [[1, 2]]}', "e.json", "is no table"),
    ],
)
def test_a_dataset_that_cannot_be_read_says_why(
    registry: Registry, tmp_path: Path, content: str, name: str, says: str
) -> None:
    path = tmp_path / name
    path.write_text(content)

    def log() -> None:
        mlflow.log_artifact(str(path), "data")
        dataset = from_pandas(
            pd.DataFrame({"a": [1]}), source=mlflow.get_artifact_uri(f"data/{name}"), name="broken"
        )
        mlflow.log_input(dataset, context="evaluation")

    mv = a_run(registry, log)
    found = evaluation.logged(registry, mv)
    assert found is not None and found.uri.endswith(f"/data/{name}")
    with pytest.raises(RegistryError) as raised:
        evaluation.read(registry, found, EXAMPLE)
    assert says in raised.value.message
    assert raised.value.message.startswith("evaluation dataset `broken`")


def test_a_file_outside_the_runs_artifacts_is_never_read(
    registry: Registry, tmp_path: Path
) -> None:
    """Whoever logs runs must not have the bot read its own files: a dataset naming a path
    on the bot's machine outside the run's artifacts is refused before anything is read."""
    secret = tmp_path / "secrets.csv"
    secret.write_text("a,b\n1,2\n")

    def log() -> None:
        frame = pd.DataFrame({"a": [1], "b": [2]})
        mlflow.log_input(from_pandas(frame, source=str(secret), name="x"), context="evaluation")

    found = evaluation.logged(registry, a_run(registry, log))
    assert found is not None and found.refused
    with pytest.raises(RegistryError) as raised:
        evaluation.read(registry, found, EXAMPLE)
    assert raised.value.message == (
        "evaluation dataset `x` (1 row) lies outside the artifacts of its run's experiment on "
        "this machine: only the registry's own files are read"
    )
    assert "1,2" not in raised.value.message


@pytest.mark.parametrize(
    "escaped",
    ["%2E%2E/%2E%2E/secrets.csv", "%2E%2E%2F%2E%2E%2Fsecrets.csv", "x/../../../secrets.csv?"],
)
def test_an_escaped_path_cannot_leave_the_experiments_artifacts(
    registry: Registry, tmp_path: Path, escaped: str
) -> None:
    """MLflow decodes a file URI's escapes when it fetches it: a source is taken only as
    written, never decoded past the guard."""
    (tmp_path / "secrets.csv").write_text("a,b\n1,2\n")
    inside = (tmp_path / "artifacts").as_uri()

    def log() -> None:
        frame = pd.DataFrame({"a": [1], "b": [2]})
        dataset = from_pandas(frame, source=f"{inside}/{escaped}", name="x")
        mlflow.log_input(dataset, context="evaluation")

    found = evaluation.logged(registry, a_run(registry, log))
    assert found is not None and found.refused
    assert "outside the artifacts" in evaluation.unread(found)


def test_a_bom_csv_is_read_as_its_header_says(registry: Registry, tmp_path: Path) -> None:
    csv = tmp_path / "eval.csv"
    csv.write_bytes("a,b,label\n1,2,0\n".encode("utf-8-sig"))

    def log() -> None:
        mlflow.log_artifact(str(csv))
        dataset = from_pandas(
            pd.DataFrame({"a": [1]}), source=mlflow.get_artifact_uri("eval.csv"), name="b"
        )
        mlflow.log_input(dataset, context="evaluation")

    found = evaluation.logged(registry, a_run(registry, log))
    assert found is not None
    read = evaluation.read(registry, found, EXAMPLE)
    assert read.columns == ("a", "b") and read.targets == (0,)


def test_missing_values_are_sent_as_json_has_them() -> None:
    dataset = evaluation.EvaluationSet("d", ("a",), ((float("nan"),), (float("inf"),), (1.0,)), 3)
    assert dataset.bodies()[0]["dataframe_split"]["data"] == [[None], [None], [1.0]]


def test_quality_is_accuracy_for_labels_and_mean_absolute_error_for_numbers() -> None:
    assert quality([0, 1, 2, 2], [0, 1, 1, 2]) == ("accuracy", 0.75)
    assert quality(["a", "b"], ["a", "a"]) == ("accuracy", 0.5)
    assert quality([1.0, 2.5], [1.5, 2.0]) == ("mean absolute error", 0.5)
    assert quality([[0.1, 0.9]], [1]) is None  # probabilities are not set beside labels
    assert quality([0, 1], [0]) is None
    # a regression with whole-number targets (prices) is judged by its error, not matches
    assert quality([249_999.5, 100_000.5], [250_000, 100_000]) == ("mean absolute error", 0.5)
    assert quality([1.5, float("nan")], [1.0, 2.0]) is None  # a missing value: no figure


def test_a_measured_diff_says_what_differs_and_by_how_much() -> None:
    measured = Measured("iris", 3, 2, "iris-test", 44, 45, "accuracy", 0.978, 0.956)
    assert measured.said() == (
        "v3 predicts otherwise than v2 on 1 of 45 rows; accuracy 0.978 against v2's 0.956 (+0.022)"
    )
    assert Measured.of(measured.as_dict()) == measured
    assert Measured.of({"version": 3}) is None
    same = Measured("iris", 3, 2, "iris-test", 45, 45)
    assert same.said() == "v3 predicts as v2 on all 45 rows"
    assert Measured("m", 3, 2, "d", 1, 1).said() == "v3 predicts as v2 on the only row"
    assert Measured("m", 3, 2, "d", 0, 1).said() == "v3 predicts otherwise than v2 on 1 of 1 row"
    worse = Measured("m", 3, 2, "d", 0, 2, "mean absolute error", 0.3, 0.1)
    assert worse.said().endswith(
        "; mean absolute error 0.300 against v2's 0.100 (+0.200, lower is better)"
    )
    assert storable({"p": [1.0, float("nan")], "q": float("inf")}) == {"p": [1.0, None], "q": None}
