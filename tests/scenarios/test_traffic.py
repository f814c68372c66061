"""Live traffic in `status`, end to end on the local target: real model-server processes
answer real requests (some with HTTP 500, from a model that fails), and `/status` shows
what they answered, added up over every worker and version."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from bot.console.render import render
from bot.slack.rendering import blocks
from commands.base import StatusReport
from core.events import EndpointStatus, Outcome
from core.runtime import Runtime
from core.targets.base import EndpointRef, Traffic
from core.targets.local.control import call
from core.targets.local.target import LocalTarget, Zygote
from tests.clock import FakeClock
from tests.conftest import make_settings
from tests.local.flaky import BAD, FLAKY, GOOD, RAISES, log_flaky
from tests.scenarios.test_deploy_scale_status import _wait_until, run

REF = EndpointRef("dev", FLAKY)


@pytest.fixture(scope="module")
def flaky_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry of its own holding `flaky` v1 and v2."""
    root = tmp_path_factory.mktemp("flaky")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert log_flaky(uri, root) == [1, 2]
    return uri


@pytest.fixture
def rt(tmp_path: Path, flaky_uri: str, zygote: Zygote) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "state", flaky_uri)
    runtime = Runtime(settings, zygote=zygote, clock=FakeClock())
    yield runtime
    runtime.shut_down_endpoints()
    runtime.close()


def _target(rt: Runtime) -> LocalTarget:
    target = rt.deployer.targets["dev"]
    assert isinstance(target, LocalTarget)
    return target


def _worker_ports(rt: Runtime) -> list[int]:
    """The private ports of the serving deployment's workers, one per process."""
    status = call(_target(rt).layout.control_path(REF), {"op": "status"}, what=FLAKY)
    assert status is not None
    (active,) = [d for d in status["deployments"] if d["state"] == "active"]
    return [w["private_port"] for w in active["workers"]]


def _send(url: str, good: int, bad: int) -> list[float]:
    """`good` answered requests and `bad` failing ones; the round trip of each, in ms."""
    took = []
    with httpx.Client(timeout=10) as client:
        for body, n, status in ((GOOD, good, 200), (BAD, bad, 500)):
            for _ in range(n):
                began = time.perf_counter()
                answer = client.post(url, json=body)
                took.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == status, answer.text
    return took


def _status(rt: Runtime) -> tuple[EndpointStatus, Traffic]:
    report = run(rt, f"/status {FLAKY}")
    assert isinstance(report, StatusReport)
    (ep,) = report.endpoints
    assert ep.traffic is not None
    return ep, ep.traffic


def _shown(rt: Runtime) -> tuple[str, str]:
    """What `/status` shows in Slack (the Block Kit text) and in the console."""
    report = run(rt, f"/status {FLAKY}")
    _, slack = blocks.status(report)
    console = Console(width=300, record=True, highlight=False)
    render(console, report)
    return "\n".join(str(b.get("text", "")) for b in slack), console.export_text()


def test_status_adds_up_what_every_worker_answered(rt: Runtime) -> None:
    deployed = run(rt, f"/deploy {FLAKY} v1")
    assert isinstance(deployed, Outcome) and deployed.ok, deployed.text
    _, quiet = _status(rt)
    # the smoke test on the new deployment's private port is no one's traffic
    assert (quiet.known, quiet.requests, quiet.p50_ms) == (True, 0, None)

    assert run(rt, f"/scale {FLAKY} 2cpu 1gb").ok  # two worker processes
    one, two = _worker_ports(rt)
    took = _send(f"http://127.0.0.1:{one}/invocations", good=12, bad=3)
    took += _send(f"http://127.0.0.1:{two}/invocations", good=8, bad=5)
    took += _send(deployed.url, good=4, bad=0)

    ep, seen = _status(rt)
    assert (seen.requests, seen.errors, seen.error_rate) == (32, 8, 0.25)
    assert (seen.version, seen.by_version) == (1, {1: 32})
    assert seen.p50_ms is not None and seen.p99_ms is not None
    # measured inside the server, so never longer than a client's round trip (to within
    # a histogram slot); a model answering takes more than a tenth of a millisecond
    assert 0.1 <= seen.p50_ms <= seen.p99_ms <= max(took) * 1.2
    assert ep.version == 1 and ep.up

    slack, console = _shown(rt)
    for text in (slack, console):
        assert "25.0% errors (8 of 32)" in text
        assert "p50 " in text and "p99 " in text and "served by v1" in text
        assert "req/min over the last" in text


def test_after_a_redeploy_status_shows_what_each_version_served(rt: Runtime) -> None:
    first = run(rt, f"/deploy {FLAKY} v1")
    assert isinstance(first, Outcome) and first.ok, first.text
    _send(first.url, good=4, bad=1)
    assert run(rt, f"/deploy {FLAKY} v2").ok
    _send(first.url, good=6, bad=1)

    _, seen = _status(rt)
    assert (seen.requests, seen.errors) == (12, 2)
    assert (seen.version, seen.by_version) == (2, {1: 5, 2: 7})
    slack, console = _shown(rt)
    assert "served by v2 (7), v1 (5)" in slack
    assert "served by v2 (7), v1 (5)" in console


def test_a_stopped_endpoint_says_nothing_was_counted(rt: Runtime) -> None:
    assert run(rt, f"/deploy {FLAKY} v1").ok
    assert run(rt, f"/stop {FLAKY}").ok
    seen = _target(rt).traffic(REF)
    assert not seen.known and "no server process" in seen.detail


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [(BAD, 500, "negative reading"), (RAISES, 400, "unexpected error while evaluating")],
    ids=["MlflowException INTERNAL_ERROR", "any other exception"],
)
def test_a_failing_model_is_answered_as_mlflows_scoring_server_answers_it(
    rt: Runtime, body: dict[str, Any], status: int, said: str
) -> None:
    import mlflow.pyfunc
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    deployed = run(rt, f"/deploy {FLAKY} v1")
    assert isinstance(deployed, Outcome) and deployed.ok
    files = _target(rt).layout.artifacts(REF, FLAKY, 1)
    # its code imported from these files, as in the model server: tracebacks name the file
    sys.modules.pop("flaky_model", None)
    app = scoring_server.init(mlflow.pyfunc.load_model(str(files)))  # type: ignore[no-untyped-call]
    with TestClient(app, raise_server_exceptions=False) as theirs:
        expected = theirs.post("/invocations", json=body)
    answer = httpx.post(deployed.url, json=body, timeout=10)

    def shown(r: Any) -> tuple[int, str | None, str]:
        return r.status_code, r.headers.get("content-type"), r.text

    assert shown(answer) == shown(expected)
    assert answer.status_code == status and said in answer.text
    _, seen = _status(rt)
    assert (seen.requests, seen.errors) == (1, 1 if status >= 500 else 0)


def test_what_a_crashed_worker_answered_still_counts(rt: Runtime) -> None:
    deployed = run(rt, f"/deploy {FLAKY} v1")
    assert isinstance(deployed, Outcome) and deployed.ok
    _send(deployed.url, good=6, bad=2)
    status = call(_target(rt).layout.control_path(REF), {"op": "status"}, what=FLAKY)
    assert status is not None
    (active,) = [d for d in status["deployments"] if d["state"] == "active"]
    os.kill(active["workers"][0]["pid"], signal.SIGKILL)
    _wait_until(
        lambda: _target(rt).health(REF).detail.startswith("1/1 processes up, 1 restart(s), ")
    )
    _send(deployed.url, good=3, bad=0)  # answered by the worker that replaced it

    _, seen = _status(rt)
    assert (seen.requests, seen.errors, seen.by_version) == (11, 2, {1: 11})
