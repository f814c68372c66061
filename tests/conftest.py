"""Fixtures that build real components: an MLflow registry, the state database, local model
servers; and a clock tests move by hand."""

from __future__ import annotations

import socket
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Environment, Limits, Settings
from core.events import Event
from core.registry.demo import create_demo_model
from core.resources import Resources
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.clock import FakeClock


class Recorder:
    """A reporter that keeps every event, for tests to read."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def report(self, event: Event) -> None:
        self.events.append(event)

    @property
    def text(self) -> str:
        return "\n".join(f"{e.kind}: {e.message}" for e in self.events)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _log_broken_versions(tracking_uri: str, artifact_root: Path, work: Path) -> None:
    """iris v3: artifacts that cannot be loaded; `crasher` v1: a server that dies at start."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("iris-demo")
    assert experiment is not None
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run(experiment_id=experiment.experiment_id), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            LogisticRegression(max_iter=300).fit(x, y),
            name="model",
            registered_model_name="iris",
            pip_requirements=["scikit-learn"],
        )
    path = Path(
        client.get_model_version_download_uri("iris", info.registered_model_version).removeprefix(
            "file://"
        )
    )
    for weights in path.glob("model.*"):
        weights.write_bytes(b"these bytes are not a model")

    module = work / "crasher_model.py"
    module.write_text(
        textwrap.dedent("""
        import os, sys
        import mlflow.pyfunc

        class Crasher(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                print("fatal: cannot open /dev/accel0", file=sys.stderr, flush=True)
                os._exit(70)

            def predict(self, context, model_input):
                return model_input
    """)
    )
    sys.path.insert(0, str(work))
    try:
        import crasher_model

        with mlflow.start_run(experiment_id=experiment.experiment_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=crasher_model.Crasher(),
                code_paths=[str(module)],
                registered_model_name="crasher",
                pip_requirements=["mlflow"],
            )
    finally:
        sys.path.remove(str(work))


@pytest.fixture(scope="session")
def registry_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real MLflow registry (SQLite): iris v1, v2 (@champion), a broken v3, and `crasher`."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
    _log_broken_versions(uri, root / "artifacts", root)
    return uri


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """One warm model-server runtime for the whole run: warming costs seconds, once."""
    z = Zygote(state_dir=tmp_path_factory.mktemp("zygote"))
    yield z
    z.close()


def free_port_range(size: int = 20) -> tuple[int, int]:
    """A range of ports that are free right now, so parallel runs do not collide."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            start = s.getsockname()[1]
        if start + size < 65000:
            return start, start + size
    raise RuntimeError("no free port range")


def make_settings(state_dir: Path, registry_uri: str, **overrides: object) -> Settings:
    low, high = free_port_range()
    environments = [
        Environment(
            name="dev",
            port_range=(low, low + 9),
            default=Resources(cpu=1, memory_mb=1024, replicas=1),
            limits=Limits(cpu=4, memory_mb=4096, replicas=3),
        ),
        Environment(
            name="prod",
            port_range=(low + 10, high),
            default=Resources(cpu=1, memory_mb=1024, replicas=1),
            limits=Limits(cpu=2, memory_mb=2048, replicas=2),
        ),
    ]
    fields: dict[str, object] = {
        "state_dir": state_dir,
        "mlflow_tracking_uri": registry_uri,
        "environments": environments,
        "start_timeout_s": 30,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, registry_uri: str) -> Settings:
    return make_settings(tmp_path / "state", registry_uri)


@pytest.fixture
def clock() -> FakeClock:
    """The runtime's clock: the real time until a test advances it."""
    return FakeClock()


@pytest.fixture
def runtime(settings: Settings, zygote: Zygote, clock: FakeClock) -> Iterator[Runtime]:
    rt = Runtime(settings, zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()
