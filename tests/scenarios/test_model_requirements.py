"""Models whose requirements the bot's runtime lacks, deployed with `/deploy`: refused at build
by name in a plain environment, served from their own uv-built environment where the
environment says `"env_manager": "uv"`. The package is a real one from PyPI (pyjokes, at a
version the runtime does not have), the models real MLflow models in a registry of their own."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from core.config import Settings
from core.events import EventKind, Outcome
from core.registry.source import RegistrySource
from core.resources import Resources
from core.runtime import Runtime
from core.targets.base import EndpointRef, quiet_step
from core.targets.local.target import LocalTarget, Zygote
from tests.clock import FakeClock
from tests.conftest import Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import run

JOKES = "pyjokes==0.6.0"
BODY = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}

_MODULE = """
import mlflow.pyfunc

class Jokes(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        import pyjokes  # only the model's own environment has it

        assert pyjokes.get_joke()
        return [pyjokes.__version__] * len(model_input)

class Plain(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return ["plain"] * len(model_input)
"""


def _log(module: Path, cls: str, name: str, reqs: list[str], *, ship: bool) -> str:
    """Logs and registers a version; its artifacts' folder."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    model_class = getattr(__import__(module.stem), cls)
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model_class(),
            code_paths=[str(module)] if ship else None,
            registered_model_name=name,
            pip_requirements=reqs,
            signature=ModelSignature(
                inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("string")])
            ),
            input_example=pd.DataFrame({"x": [1.0]}),
        )
    location = mlflow.MlflowClient().get_logged_model(info.model_id).artifact_location
    return location.removeprefix("file://")


@pytest.fixture(scope="module")
def jokes_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jokes` v1 needs pyjokes 0.6.0, v2 needs nothing the runtime lacks; `unshipped` v1 and
    v2 are the same, logged without their code; `elder` v1 was logged with Python 3.9."""
    import cloudpickle
    import mlflow

    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("pyjokes")  # what these tests are about
    root = tmp_path_factory.mktemp("jokes-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    module = root / "jokes_model.py"
    module.write_text(textwrap.dedent(_MODULE))
    unshipped = root / "unshipped_jokes.py"
    unshipped.write_text(textwrap.dedent(_MODULE))
    needs = [f"mlflow=={mlflow.__version__}", f"cloudpickle=={cloudpickle.__version__}", JOKES]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("jokes")
    sys.path.insert(0, str(root))
    try:
        _log(module, "Jokes", "jokes", needs, ship=True)
        _log(module, "Plain", "jokes", needs[:2], ship=True)
        _log(unshipped, "Plain", "unshipped", needs[:2], ship=False)
        _log(unshipped, "Jokes", "unshipped", needs, ship=False)
        elder = Path(_log(module, "Plain", "elder", needs[:2], ship=True))
        env = (elder / "python_env.yaml").read_text()
        (elder / "python_env.yaml").write_text(env.replace(platform.python_version(), "3.9.18"))
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("jokes_model", None)
        sys.modules.pop("unshipped_jokes", None)
        mlflow.set_tracking_uri(previous)
    yield uri


@pytest.fixture
def jokes_runtime(
    tmp_path: Path, jokes_registry: str, zygote: Zygote, clock: FakeClock
) -> Iterator[Runtime]:
    """dev serves from the bot's runtime only; prod builds model environments with uv."""
    # servers started from a model environment import MLflow cold, not forked warm
    settings: Settings = make_settings(tmp_path / "state", jokes_registry, start_timeout_s=120)
    settings.environments[1].env_manager = "uv"
    rt = Runtime(settings, zygote=zygote, clock=clock)
    yield rt
    rt.shut_down_endpoints()
    rt.close()


def _local(rt: Runtime, env: str) -> LocalTarget:
    target = rt.targets[env]
    assert isinstance(target, LocalTarget)
    return target


def _infos(recorder: Recorder) -> list[str]:
    return [e.message for e in recorder.events if e.kind is EventKind.INFO and e.step == "build"]


def test_a_plain_environment_refuses_a_model_whose_package_is_missing_and_nothing_serves(
    jokes_runtime: Runtime,
) -> None:
    recorder = Recorder()
    outcome = run(jokes_runtime, "/deploy jokes v1", recorder)

    assert isinstance(outcome, Outcome) and not outcome.ok
    assert f"{JOKES} — not installed" in outcome.text
    assert f"pip install {JOKES}" in outcome.text
    assert '"env_manager": "uv" on environment dev' in outcome.text
    steps = [e.step for e in recorder.events if e.kind is EventKind.STEP]
    assert steps == ["resolve", "build"]  # refused before anything started
    dev = _local(jokes_runtime, "dev")
    assert dev.endpoints() == []
    assert dev.ports.find(EndpointRef("dev", "jokes")) is None
    low, high = dev.env.port_range
    listening = [
        c.laddr.port
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and low <= c.laddr.port <= high
    ]
    assert listening == []  # nothing of the endpoint listens anywhere in its range


def test_a_model_logged_with_another_python_is_served_and_the_thread_says_so(
    jokes_runtime: Runtime,
) -> None:
    recorder = Recorder()
    outcome = run(jokes_runtime, "/deploy elder v1", recorder)

    assert isinstance(outcome, Outcome) and outcome.ok, outcome.text
    served = ".".join(platform.python_version_tuple()[:2])
    built = [e.message for e in recorder.events if e.step == "build"]
    assert any(f"logged with Python 3.9, served with Python {served}" in m for m in built), built
    assert outcome.url is not None
    answer = httpx.post(outcome.url, json=BODY)
    assert answer.json() == {"predictions": ["plain", "plain"]}


def test_a_model_logged_without_its_code_is_refused_at_build_naming_the_module(
    jokes_runtime: Runtime,
) -> None:
    outcome = run(jokes_runtime, "/deploy unshipped v1", Recorder())

    assert isinstance(outcome, Outcome) and not outcome.ok
    assert "`unshipped_jokes`, which is neither shipped with the model" in outcome.text
    assert "Log the model again with code_paths=[" in outcome.text
    assert _local(jokes_runtime, "dev").endpoints() == []


def test_in_its_own_environment_a_model_without_its_code_fails_at_start_saying_what_to_do(
    jokes_runtime: Runtime,
) -> None:
    outcome = run(jokes_runtime, "/deploy unshipped v2 to prod", Recorder())

    assert isinstance(outcome, Outcome) and not outcome.ok
    assert "No module named 'unshipped_jokes'" in outcome.text, outcome.text
    assert "log the model again with code_paths=[<the file or package of `unshipped_jokes`>]" in (
        outcome.text
    )
    prod = _local(jokes_runtime, "prod")
    assert prod.endpoints() == []
    assert not prod.health(EndpointRef("prod", "unshipped")).up


def test_a_uv_environment_serves_the_model_from_its_own_environment_and_reuses_it(
    jokes_runtime: Runtime,
) -> None:
    first = Recorder()
    outcome = run(jokes_runtime, "/deploy jokes v1 to prod", first)

    assert isinstance(outcome, Outcome) and outcome.ok, first.text
    answer = httpx.post(outcome.url, json=BODY, timeout=10)
    assert answer.json() == {"predictions": ["0.6.0", "0.6.0"]}
    assert answer.headers["x-model"] == "jokes/1"
    said = _infos(first)
    steps = [
        "building the model environment ",
        "installing the model's 3 requirement(s): mlflow, cloudpickle, pyjokes",
        "checking that the model environment loads MLflow",
        "model environment ",
    ]
    assert len(said) == len(steps), said
    assert all(text.startswith(prefix) for text, prefix in zip(said, steps, strict=True)), said
    prod = _local(jokes_runtime, "prod")
    health = prod.health(EndpointRef("prod", "jokes"))
    interpreters = {psutil.Process(pid).cmdline()[0] for pid in health.processes}
    assert len(interpreters) == 1 and "/uvenvs/" in interpreters.pop()

    # the runtime serves v2 (warm fork), then v1 again from the same environment, on one URL
    plain = run(jokes_runtime, "/deploy jokes v2 to prod", Recorder())
    assert isinstance(plain, Outcome) and plain.ok and plain.url == outcome.url
    assert httpx.post(outcome.url, json=BODY, timeout=10).json() == {
        "predictions": ["plain", "plain"]
    }
    second = Recorder()
    again = run(jokes_runtime, "/deploy jokes v1 to prod", second)

    assert isinstance(again, Outcome) and again.ok, second.text
    said = _infos(second)
    assert len(said) == 1 and said[0].startswith("reusing the model environment "), said
    answers = [httpx.post(outcome.url, json=BODY, timeout=10) for _ in range(20)]
    assert {(a.headers["x-model"], a.json()["predictions"][0]) for a in answers} == {
        ("jokes/1", "0.6.0")
    }
    # a worker in the model's own environment counts what it answers as a forked one does
    assert prod.traffic(EndpointRef("prod", "jokes")).by_version == {1: 21, 2: 1}


def test_a_worker_in_its_own_environment_splits_requests_with_a_candidate(
    jokes_runtime: Runtime,
) -> None:
    """The split reaches a worker that runs in a model's own environment (its descriptor
    passed through the interpreter it executes): jokes v1 serves from its uv environment, v2
    from the runtime beside it takes half of the requests and a copy of the others."""
    outcome = run(jokes_runtime, "/deploy jokes v1 to prod", Recorder())
    assert isinstance(outcome, Outcome) and outcome.ok
    prod, ref = _local(jokes_runtime, "prod"), EndpointRef("prod", "jokes")
    mv = jokes_runtime.registry.resolve("jokes", version=2)
    built = prod.build(ref, mv, RegistrySource(jokes_runtime.registry), quiet_step())
    resources = Resources(cpu=1, memory_mb=1024, replicas=1)
    started = prod.start(ref, mv, built, resources, "candidate", quiet_step())
    prod.smoke_test(ref, started, built, quiet_step())

    prod.split(ref, "candidate", canary=50, shadow=100, tolerance=0.0, step=quiet_step())
    with httpx.Client(timeout=10) as client:
        answers = [client.post(outcome.url, json=BODY) for _ in range(20)]
    seen = Counter((a.headers["x-model"], a.json()["predictions"][0]) for a in answers)
    assert seen == {("jokes/1", "0.6.0"): 10, ("jokes/2", "plain"): 10}
    found = prod.compare(ref, "candidate")
    assert found.serving is not None and found.candidate is not None
    assert (found.serving.requests, found.candidate.requests) == (10, 10)
    deadline = time.monotonic() + 30  # the copies are answered after their callers
    while found.shadowed.compared < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
        found = prod.compare(ref, "candidate")
    assert (found.shadowed.compared, found.shadowed.agreed) == (10, 0)  # "plain" is no version
