"""A registry that refuses connections, or accepts them and never answers, fails the deploy
within the bounded wait, names the registry without its password, and frees the endpoint."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.events import Outcome
from core.registry.mlflow import REGISTRY_WAIT_S, http_waits
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import Recorder, make_settings
from tests.scenarios.test_deploy_scale_status import run

PASSWORD = "s3cr3t-pass"
# the old client retried for about 4 minutes: a run still going after this never ended
GIVE_UP_S = 60.0


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nobody takes it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _deploy(
    tmp_path: Path, zygote: Zygote, port: int, **overrides: object
) -> tuple[Runtime, object, Recorder, float]:
    """Deploys iris with the registry at `port`: the runtime, what the deploy answered, its
    events and how long it took (it fails the test if the deploy is still waiting)."""
    settings = make_settings(
        tmp_path / "state", f"http://alice:{PASSWORD}@127.0.0.1:{port}/", **overrides
    )
    runtime = Runtime(settings, zygote=zygote)
    recorder = Recorder()
    result: list[object] = []
    begun = time.monotonic()
    worker = threading.Thread(
        target=lambda: result.append(run(runtime, "/deploy iris v1", recorder)), daemon=True
    )
    worker.start()
    worker.join(GIVE_UP_S)
    took = time.monotonic() - begun
    assert result, f"the deploy was still waiting on the registry after {took:.0f} s"
    return runtime, result[0], recorder, took


def test_a_refused_registry_fails_the_deploy_at_once_and_frees_the_endpoint(
    tmp_path: Path, zygote: Zygote, refused_port: int
) -> None:
    runtime, outcome, recorder, took = _deploy(tmp_path, zygote, refused_port)
    try:
        assert isinstance(outcome, Outcome) and not outcome.ok
        assert took < 10
        assert outcome.text.startswith(
            f"failed: the MLflow registry at http://***@127.0.0.1:{refused_port}/ cannot be "
            "reached (connection refused; gave up after "
        )
        assert PASSWORD not in outcome.text + recorder.text
        op = runtime.repos.operations.get(outcome.operation or "")
        assert op is not None and op.state == "failed" and PASSWORD not in (op.error or "")
        assert runtime.repos.locks.get("dev", "iris") is None
    finally:
        runtime.close()


def test_a_silent_registry_fails_the_deploy_within_the_wait_and_frees_the_endpoint(
    tmp_path: Path, zygote: Zygote, silent_port: int
) -> None:
    runtime, outcome, recorder, took = _deploy(tmp_path, zygote, silent_port, registry_wait_s=8.0)
    try:
        assert isinstance(outcome, Outcome) and not outcome.ok
        assert 2 < took < 8.0 + 3  # it did wait, and not past its bound
        assert outcome.text.startswith(
            f"failed: the MLflow registry at http://***@127.0.0.1:{silent_port}/ did not "
            "answer within 8 s while listing the registered models"
        )
        assert PASSWORD not in outcome.text + recorder.text
        assert runtime.repos.locks.get("dev", "iris") is None
        # the endpoint is free: the next deploy is not refused as locked, it fails the same way
        again = run(runtime, "/deploy iris v1")
        assert isinstance(again, Outcome) and "did not answer within 8 s" in again.text
    finally:
        runtime.close()


def test_the_default_wait_keeps_every_registry_call_within_30_seconds() -> None:
    waits = http_waits(REGISTRY_WAIT_S)
    tries = int(waits["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
    per_try = int(waits["MLFLOW_HTTP_REQUEST_TIMEOUT"])
    sleeps = sum(
        int(waits["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) * 2**n
        + float(waits["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"])
        for n in range(1, tries - 1)
    )
    assert REGISTRY_WAIT_S == 30
    assert 20 <= tries * per_try + sleeps <= 30
