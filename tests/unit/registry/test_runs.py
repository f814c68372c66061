"""`RunRegistrar` against a real MLflow store in SQLite: which run it picks, what it registers,
what it says when it cannot, and how it waits for a version that MLflow holds pending."""

from __future__ import annotations

import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from core.errors import NotFound, RegistryError
from core.registry.mlflow import Registry
from core.registry.runs import RunRegistrar, model_name_for


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A migrated, empty MLflow database and a saved scikit-learn model, made once: migrating
    takes seconds, copying the file does not."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("mlflow-template")
    MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db").search_experiments()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
            str(root / "model"),
            pip_requirements=["scikit-learn"],
        )
    return root / "mlflow.db", root / "model"


@dataclass
class Lab:
    """A fresh tracking store with helpers to make runs whose times and outcome we choose."""

    root: Path
    model_dir: Path
    sleeps: list[float] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root}/mlflow.db"

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)

    def experiment(self, name: str) -> str:
        location = (self.root / "artifacts" / name.replace("/", "_")).as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def run(
        self,
        experiment_id: str,
        *,
        start: int,
        end: int | None = None,
        status: str = "FINISHED",
        model: str | None = "logged",
        metrics: dict[str, float] | None = None,
    ) -> str:
        """`model`: "logged" (an MLflow 3 LoggedModel of the run), "artifacts" (MLflow 2 style,
        at runs:/<id>/model), "pending" (a LoggedModel never finalized) or None."""
        client = self.client
        run_id: str = client.create_run(experiment_id, start_time=start).info.run_id
        for key, value in (metrics or {}).items():
            client.log_metric(run_id, key, value, timestamp=start)
        if model in ("logged", "pending"):
            logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
            client.log_model_artifacts(logged.model_id, str(self.model_dir))
            if model == "logged":
                client.finalize_logged_model(logged.model_id, "READY")
        elif model == "artifacts":
            client.log_artifacts(run_id, str(self.model_dir), "model")
        if status != "RUNNING":
            client.set_terminated(run_id, status=status, end_time=end)
        return run_id

    def registrar(self, **options: Any) -> RunRegistrar:
        return RunRegistrar(tracking_uri=self.uri, sleep=self.sleeps.append, **options)


@pytest.fixture
def lab(tmp_path: Path, template: tuple[Path, Path]) -> Lab:
    database, model_dir = template
    shutil.copy(database, tmp_path / "mlflow.db")
    return Lab(tmp_path, model_dir)


class SlowRegistry:
    """Makes the SQLite registry behave like an asynchronous one: every new version starts
    PENDING_REGISTRATION (a trigger), and `outcome` is written after `after` sleeps."""

    def __init__(
        self, lab: Lab, *, after: int, outcome: str | None, message: str | None = None
    ) -> None:
        self.lab, self.after, self.outcome, self.message = lab, after, outcome, message
        self.sql(
            "CREATE TRIGGER hold AFTER INSERT ON model_versions BEGIN "
            "UPDATE model_versions SET status = 'PENDING_REGISTRATION' "
            "WHERE name = NEW.name AND version = NEW.version; END"
        )

    def sql(self, statement: str, *params: object) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.lab.root / "mlflow.db", isolation_level=None)) as db:
            return list(db.execute(statement, params))

    def sleep(self, seconds: float) -> None:
        self.lab.sleeps.append(seconds)
        if self.outcome is not None and len(self.lab.sleeps) == self.after:
            self.sql(
                "UPDATE model_versions SET status = ?, status_message = ? "
                "WHERE status = 'PENDING_REGISTRATION'",
                self.outcome,
                self.message,
            )

    def registrar(self, **options: Any) -> RunRegistrar:
        return RunRegistrar(tracking_uri=self.lab.uri, sleep=self.sleep, **options)

    def statuses(self) -> list[tuple[object, ...]]:
        return self.sql("SELECT name, version, status FROM model_versions")


def test_picks_the_newest_finished_run_by_end_time(lab: Lab) -> None:
    exp = lab.experiment("churn")
    # started first, finished last: the one to pick
    long_run = lab.run(exp, start=1_000, end=9_000, metrics={"auc": 0.91})
    lab.run(exp, start=5_000, end=6_000, metrics={"auc": 0.80})  # first in MLflow's own list
    lab.run(exp, start=2_000, end=3_000)
    listed = [r.info.run_id for r in lab.client.search_runs([exp])]
    assert listed[0] != long_run

    run = lab.registrar().latest_run("churn")

    assert run.run_id == long_run
    assert run.status == "FINISHED"
    assert run.ended_at == datetime.fromtimestamp(9, tz=UTC)
    assert run.metrics == {"auc": 0.91}
    assert run.model_id is not None
    assert run.source == lab.client.get_logged_model(run.model_id).artifact_location


def test_skips_failed_killed_running_and_modelless_runs(lab: Lab) -> None:
    exp = lab.experiment("churn")
    good = lab.run(exp, start=1_000, end=2_000)
    lab.run(exp, start=1_500, end=9_000, status="FAILED")
    lab.run(exp, start=1_600, end=8_500, status="KILLED")
    lab.run(exp, start=9_500, status="RUNNING")
    lab.run(exp, start=3_000, end=8_000, model=None)
    lab.run(exp, start=3_000, end=7_000, model="pending")

    assert lab.registrar().latest_run("churn").run_id == good


def test_finds_a_model_saved_as_run_artifacts(lab: Lab) -> None:
    exp = lab.experiment("churn")
    run_id = lab.run(exp, start=1_000, end=2_000, model="artifacts")

    run = lab.registrar().latest_run("churn")
    registered = lab.registrar().register("churn")

    assert run.run_id == run_id and run.model_id is None and run.source.endswith("/model")
    version = Registry(tracking_uri=lab.uri).resolve("churn", version=registered.version)
    assert version.run_id == run_id
    assert (Path(version.source.removeprefix("file://")) / "MLmodel").exists()


def test_finds_a_model_logged_the_usual_way(lab: Lab) -> None:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    exp = lab.experiment("churn")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(lab.uri)
    try:
        with mlflow.start_run(experiment_id=exp) as active, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.log_metric("accuracy", 0.75)
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
                name="model",
                pip_requirements=["scikit-learn"],
            )
    finally:
        mlflow.set_tracking_uri(previous)

    registrar = lab.registrar()
    run = registrar.latest_run("churn")
    registered = registrar.register("churn")

    assert run.model_id == info.model_id
    assert registered.run_id == active.info.run_id
    assert registered.metrics == {"accuracy": 0.75}
    version = Registry(tracking_uri=lab.uri).resolve("churn", version=registered.version)
    assert version.source == lab.client.get_logged_model(info.model_id).artifact_location
    assert (Path(version.source.removeprefix("file://")) / "MLmodel").exists()


def test_registers_new_versions_under_the_experiment_name(lab: Lab) -> None:
    exp = lab.experiment("team/churn prediction")
    first = lab.run(exp, start=1_000, end=2_000, metrics={"auc": 0.8})
    registrar = lab.registrar()

    one = registrar.register("team/churn prediction")
    second = lab.run(exp, start=3_000, end=4_000, metrics={"auc": 0.9})
    two = registrar.register("team/churn prediction")

    assert (one.model, one.version, one.run_id) == ("churn-prediction", 1, first)
    assert (two.model, two.version, two.run_id) == ("churn-prediction", 2, second)
    assert two.metrics == {"auc": 0.9} and two.experiment == "team/churn prediction"
    assert two.ended_at == datetime.fromtimestamp(4, tz=UTC)
    # SQLite makes versions READY at once: one read, no sleep
    assert lab.sleeps == [] and two.waited_s < 5
    registry = Registry(tracking_uri=lab.uri)
    assert registry.resolve("churn-prediction", version=2).run_id == second


def test_registers_an_explicit_run_under_an_explicit_name(lab: Lab) -> None:
    exp = lab.experiment("churn")
    older = lab.run(exp, start=1_000, end=2_000)
    lab.run(exp, start=3_000, end=4_000)

    registered = lab.registrar().register("churn", run_id=older, model="churn-candidate")

    assert (registered.model, registered.version, registered.run_id) == (
        "churn-candidate",
        1,
        older,
    )
    assert lab.client.get_model_version("churn-candidate", "1").run_id == older
    assert Registry(tracking_uri=lab.uri).models() == ["churn-candidate"]


def test_an_explicit_run_must_be_a_finished_run_of_that_experiment(lab: Lab) -> None:
    exp = lab.experiment("churn")
    other = lab.run(lab.experiment("fraud"), start=1_000, end=2_000)
    running = lab.run(exp, start=1_000, status="RUNNING")
    failed = lab.run(exp, start=1_000, end=2_000, status="FAILED")
    bare = lab.run(exp, start=1_000, end=2_000, model=None)
    registrar = lab.registrar()

    with pytest.raises(NotFound, match=f"experiment `churn` has no run `{other}`"):
        registrar.register("churn", run_id=other)
    with pytest.raises(NotFound, match="there is no run `0123456789abcdef0123456789abcdef`"):
        registrar.register("churn", run_id="0123456789abcdef0123456789abcdef")
    with pytest.raises(RegistryError, match=f"run `{running}` is RUNNING: only FINISHED"):
        registrar.register("churn", run_id=running)
    with pytest.raises(RegistryError, match=f"run `{failed}` is FAILED"):
        registrar.register("churn", run_id=failed)
    with pytest.raises(NotFound, match=f"run `{bare}` of `churn` cannot .*: logged no model"):
        registrar.register("churn", run_id=bare)
    assert Registry(tracking_uri=lab.uri).models() == []


def test_unknown_and_deleted_experiments_list_what_exists(lab: Lab) -> None:
    for n in range(12):
        lab.experiment(f"exp-{n:02d}")
    lab.client.delete_experiment(lab.experiment("retired"))
    registrar = lab.registrar()

    with pytest.raises(NotFound) as unknown:
        registrar.latest_run("nope")
    with pytest.raises(NotFound) as deleted:
        registrar.register("retired")

    listed = "`Default`, " + ", ".join(f"`exp-{n:02d}`" for n in range(9))
    assert unknown.value.message == (
        f"experiment `nope` does not exist (experiments: {listed} and 3 more)"
    )
    assert deleted.value.message.startswith("experiment `retired` was deleted (experiments: ")


def test_an_experiment_without_a_usable_run_says_what_it_has(lab: Lab) -> None:
    lab.experiment("empty")
    exp = lab.experiment("churn")
    lab.run(exp, start=1_000, end=2_000, status="FAILED")
    lab.run(exp, start=1_000, status="RUNNING")
    bare = lab.run(exp, start=1_000, end=3_000, model=None)
    pending = lab.run(exp, start=1_000, end=2_500, model="pending")
    registrar = lab.registrar()

    with pytest.raises(NotFound) as empty:
        registrar.register("empty")
    with pytest.raises(NotFound) as unusable:
        registrar.latest_run("churn")

    assert empty.value.message == "experiment `empty` has no runs yet"
    assert unusable.value.message == (
        "experiment `churn` has no FINISHED run with a model to register "
        "(4 runs: 1 FAILED, 2 FINISHED, 1 RUNNING); finished runs skipped: "
        f"{bare[:8]} logged no model; {pending[:8]} has no ready model (model is PENDING)"
    )


def test_model_names_must_be_usable_in_commands(lab: Lab) -> None:
    lab.run(lab.experiment("churn"), start=1_000, end=2_000)

    with pytest.raises(RegistryError, match="`bad name` is not a valid model name"):
        lab.registrar().register("churn", model="bad name")
    with pytest.raises(RegistryError, match="say one with `as <model>`"):
        model_name_for("/Users/someone/???/")
    assert model_name_for("/Users/someone/Churn: v2 (gbm)") == "Churn-v2-gbm"


@pytest.fixture
def churn(lab: Lab) -> Iterator[Lab]:
    lab.run(lab.experiment("churn"), start=1_000, end=2_000)
    yield lab


def test_waits_for_a_pending_version_with_backoff(churn: Lab) -> None:
    slow = SlowRegistry(churn, after=5, outcome="READY")

    registered = slow.registrar(poll_initial_s=0.25, poll_max_s=1.5).register("churn")

    assert churn.sleeps == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert registered.waited_s == pytest.approx(4.75)
    assert slow.statuses() == [("churn", 1, "READY")]


def test_a_failed_registration_reports_mlflows_message(churn: Lab) -> None:
    slow = SlowRegistry(
        churn, after=2, outcome="FAILED_REGISTRATION", message="copying artifacts: disk full"
    )

    with pytest.raises(RegistryError) as failed:
        slow.registrar().register("churn")

    assert (
        failed.value.message == "MLflow could not register churn v1: copying artifacts: disk full"
    )
    assert churn.sleeps == [0.2, 0.4]


def test_gives_up_after_the_timeout_without_sleeping_past_it(churn: Lab) -> None:
    slow = SlowRegistry(churn, after=0, outcome=None)

    with pytest.raises(RegistryError) as late:
        slow.registrar(poll_initial_s=0.5, poll_max_s=1.0, timeout_s=3.0).register("churn")

    assert churn.sleeps == [0.5, 1.0, 1.0, 0.5]
    assert late.value.message == (
        "churn v1 was still PENDING_REGISTRATION after waiting 3.0 s (the limit is 3 s)"
    )
    assert slow.statuses() == [("churn", 1, "PENDING_REGISTRATION")]


def test_mlflow_errors_become_registry_errors() -> None:
    registrar = RunRegistrar(tracking_uri="nosuchscheme://nowhere")

    with pytest.raises(RegistryError) as failed:
        registrar.latest_run("churn")

    assert failed.value.message.startswith("MLflow failed while opening the tracking store: ")
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
