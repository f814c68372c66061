"""Bot processes sharing the work (`chatops worker`): every queued operation runs exactly once,
on whichever process takes it, and one whose process died is taken over and finished.

The workers are real processes configured only through the environment, as deployed; their
endpoints are CML models on an emulated workspace in this process (cheap to roll out). The
PostgreSQL test skips when no server answers (see tests/db.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from core.admission.roles import Actor
from core.config import Environment, Settings
from core.events import EventKind, NullReporter, Outcome
from core.execution.run import Brief
from core.runtime import Runtime
from core.store.models import Operation, OperationState
from core.store.repos import Repositories
from emulators.cml import RunningEmulator, start_emulator
from tests.db import postgres_schema

ROOT = Path(__file__).parents[2]
KEY_VAR = "CHATOPS_TEST_WORKERS_CML_API_KEY"
API_KEY = "cmlkey-workers-8e41d07c"
PROJECT_ID = "workers-project"
CONSOLE = Actor(id="console", name="console", groups=frozenset())
READY = re.compile(r"chatops worker (\S+): taking operations")
MODELS = [f"m{i:02d}" for i in range(20)]


def cml_environment(workspace: RunningEmulator) -> Environment:
    return Environment(
        name="dev",
        target="cml",
        url=workspace.url,
        api_key_env=KEY_VAR,
        project_id=PROJECT_ID,
        build_timeout_s=30,
        deploy_timeout_s=30,
    )


@contextmanager
def workspace_over(tracking_uri: str) -> Iterator[RunningEmulator]:
    running = start_emulator(
        tracking_uri=tracking_uri,
        api_key=API_KEY,
        projects=[{"name": "demo", "id": PROJECT_ID}],
    )
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Worker:
    """A `chatops worker` process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self, timeout: float = 60) -> str:
        """Its lease owner name, once it says it takes operations."""
        deadline = time.monotonic() + timeout
        while (found := READY.search(self.output)) is None:
            assert self.process.poll() is None, f"the worker exited:\n{self.output}"
            assert time.monotonic() < deadline, f"the worker never became ready:\n{self.output}"
            time.sleep(0.05)
        return found.group(1)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def exit_code(self, timeout: float = 30) -> int:
        """How it exited; a worker that does not within `timeout` fails the test."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit {timeout:g} s after SIGTERM:\n{self.output}")


def start_worker(
    stack: ExitStack,
    tmp_path: Path,
    name: str,
    *,
    database_url: str,
    registry_uri: str,
    env: Environment,
) -> Worker:
    """`python -m bot.cli worker` with its own state directory (as on its own machine); it and
    what it started are killed, whatever happens, when `stack` closes."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CHATOPS_", "SLACK_"))}
    environ.update(
        {
            KEY_VAR: API_KEY,
            "CHATOPS_STATE_DIR": str(tmp_path / name),
            "CHATOPS_DATABASE_URL": database_url,
            "CHATOPS_MLFLOW_TRACKING_URI": registry_uri,
            "CHATOPS_ENVIRONMENTS": json.dumps([env.model_dump(mode="json")]),
            "CHATOPS_RUNNER_POLL_S": "0.2",
        }
    )
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            env=environ,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group: it and the processes it started
        )
    worker = Worker(process, log)

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    stack.callback(kill)
    return worker


def wait_until(
    read: Callable[[], list[Operation]], done: Callable[[list[Operation]], bool], timeout: float
) -> list[Operation]:
    deadline = time.monotonic() + timeout
    while True:
        ops = read()
        failed = [f"{op.endpoint}: {op.error}" for op in ops if op.state == OperationState.FAILED]
        assert not failed, f"operations failed: {failed}"
        if done(ops):
            return ops
        assert time.monotonic() < deadline, Counter(op.state for op in ops)
        time.sleep(0.2)


@pytest.fixture
def shared_database() -> Iterator[str]:
    """A fresh PostgreSQL schema for the workers and the console to share (or a skip, before
    anything else is built, when no server answers)."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def twenty_models(tmp_path: Path, registry_uri: str) -> str:
    """A registry of this test's own: the session's (iris and the rest), plus models m00..m19,
    each with one version that is iris v1 (same run, same artifacts)."""
    copy = tmp_path / "registry" / "mlflow.db"
    copy.parent.mkdir()
    with (
        contextlib.closing(sqlite3.connect(registry_uri.removeprefix("sqlite:///"))) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
    uri = f"sqlite:///{copy}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    iris = client.get_model_version("iris", "1")
    # MLflow finds the logged model of a `models:/m-…` source through its global tracking
    # URI, whatever the client was given: point it here, whatever an earlier test left
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        for name in MODELS:
            client.create_registered_model(name)
            client.create_model_version(
                name, iris.source, run_id=iris.run_id, model_id=iris.model_id
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return uri


def test_two_workers_on_one_postgresql_run_each_of_20_operations_exactly_once(
    shared_database: str, twenty_models: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = shared_database
    monkeypatch.setenv(KEY_VAR, API_KEY)  # the console's own CML target reads it too
    with workspace_over(twenty_models) as workspace, ExitStack() as stack:
        env = cml_environment(workspace)
        workers = [
            start_worker(
                stack,
                tmp_path,
                name,
                database_url=database_url,
                registry_uri=twenty_models,
                env=env,
            )
            for name in ("worker-a", "worker-b")
        ]
        owners = [worker.ready() for worker in workers]
        assert len(set(owners)) == 2

        settings = Settings(
            state_dir=tmp_path / "console",
            database_url=database_url,
            mlflow_tracking_uri=twenty_models,
            environments=[env],
        )
        runtime = Runtime(settings)
        stack.callback(runtime.close)
        queued = []
        for name in MODELS:
            reply = runtime.deployer.deploy(
                model=name,
                version=1,
                env="dev",
                actor=CONSOLE,
                command=f"/deploy {name} v1",
                reporter=NullReporter(),
                wait=False,
            )
            assert isinstance(reply, Outcome) and reply.data == {"queued": True}, reply
            queued.append(reply.operation)
        repos = runtime.repos

        ops = wait_until(
            lambda: repos.operations.recent(limit=100),
            lambda ops: all(op.state == OperationState.SUCCEEDED for op in ops),
            timeout=60,
        )

        assert sorted(op.id for op in ops) == sorted(queued)
        for op in ops:
            kinds = Counter(event.kind for event in repos.operations.events(op.id))
            assert kinds[EventKind.STARTED] == 1, (op.endpoint, kinds)
            assert kinds[EventKind.SUCCEEDED] == 1, (op.endpoint, kinds)
            assert op.attempts == 1, op.endpoint
            assert op.owner in owners, op.owner
            assert repos.locks.get("dev", op.endpoint) is None
        # a worker holds at most 4 at once (Runner.workers) and a rollout lasts seconds, so
        # with both taking operations before the first is queued, neither can take all 20
        ran = Counter(op.owner for op in ops)
        assert set(ran) == set(owners), f"one worker ran them all: {ran}"

        endpoints = repos.endpoints.every("dev")
        assert [(e.name, e.model, e.version, e.target) for e in endpoints] == [
            (name, name, 1, "cml") for name in MODELS
        ]
        cml = workspace.emulator.workspace
        models = {model["id"]: model["name"] for model in cml.models.values()}
        deployed = Counter(models[d.fields["model_id"]] for d in cml.deployments.values())
        assert deployed == Counter(f"{name}@dev" for name in MODELS)

        audited = [
            (e.action, e.endpoint, e.outcome, e.operation_id)
            for e in repos.audit.entries(limit=100)
        ]
        assert sorted(audited) == sorted(("deploy", op.endpoint, "succeeded", op.id) for op in ops)

        for worker in workers:
            worker.terminate()
        for worker in workers:
            assert worker.exit_code() == 0, worker.output
            assert "chatops worker: handing over what it runs" in worker.output


def test_a_worker_takes_over_an_operation_whose_process_died(
    tmp_path: Path, registry_uri: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared' / 'chatops.db'}"
    repos = Repositories.open(database_url)
    headline = "console is deploying iris v1 to dev"
    lock = repos.locks.try_lock("dev", "iris", holder="console", reason=headline, ttl_s=3600)
    assert lock.acquired
    brief = Brief(
        action="deploy",
        model="iris",
        version=1,
        alias=None,
        cpu=1,
        memory_mb=1024,
        replicas=1,
        gpus=0,
        headline=headline,
        actor_id=CONSOLE.id,
        actor_name=CONSOLE.shown,
    )
    # a process began it, got as far as resolving the version, and died
    op = repos.operations.enqueue(
        kind="deploy",
        env="dev",
        endpoint="iris",
        requested_by=CONSOLE.shown,
        command="/deploy iris v1",
        brief=brief.as_dict(),
        lock_token=lock.token,
        owner="dead-host:1:abc",
        lease_s=0.1,
    )
    repos.operations.add_event(op.id, EventKind.STARTED, "", headline)
    repos.operations.record(op.id, step="resolve")

    with workspace_over(registry_uri) as workspace, ExitStack() as stack:
        worker = start_worker(
            stack,
            tmp_path,
            "worker",
            database_url=database_url,
            registry_uri=registry_uri,
            env=cml_environment(workspace),
        )
        owner = worker.ready()
        (done,) = wait_until(
            repos.operations.recent,
            lambda ops: ops[0].state == OperationState.SUCCEEDED,
            timeout=30,
        )
        worker.terminate()
        assert worker.exit_code() == 0, worker.output

    assert done.attempts == 2
    assert done.owner == owner
    events = [(e.kind, e.step, e.message) for e in repos.operations.events(op.id)]
    assert events[:4] == [
        (EventKind.STARTED, "", headline),  # the process that died
        (EventKind.STARTED, "", headline),
        (
            EventKind.INFO,
            "resolve",
            "resumed after the bot process running it stopped at resolve (attempt 2); what it "
            "had already built or started is reused, not made again",
        ),
        (EventKind.STEP, "resolve", "resolving iris v1 in the registry"),
    ]
    assert events[-1][:2] == (EventKind.SUCCEEDED, "")
    assert [kind for kind, _, _ in events].count(EventKind.STARTED) == 2
    assert repos.locks.get("dev", "iris") is None
    endpoint = repos.endpoints.get("dev", "iris")
    assert endpoint is not None and (endpoint.model, endpoint.version) == ("iris", 1)
    assert f"taking over operation {op.id} (deploy of iris in dev), attempt 2" in worker.output
