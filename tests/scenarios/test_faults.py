"""What goes wrong, and what the user is told: each failure changes nothing that serves."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from commands.base import StatusReport
from core.events import EventKind, Outcome, Refusal
from core.runtime import Runtime
from core.targets.base import EndpointRef
from tests.conftest import Recorder
from tests.scenarios.test_deploy_scale_status import COLUMNS, ROWS, run

BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


def serving(runtime: Runtime) -> list[tuple[str, str, int, bool]]:
    report = run(runtime, "/status")
    assert isinstance(report, StatusReport)
    return [(e.env, e.name, e.version, e.up) for e in report.endpoints]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "/deploy nope v1",
            # then any model other tests registered since
            "there is no model called `nope` in the registry (registered models: crasher, iris",
        ),
        ("/deploy iris v7", "iris has no version 7 (versions: v1, v2, v3)"),
        ("/deploy iris @staging", "iris has no alias @staging (aliases: @champion)"),
        ("/deploy iris v1 to qa", "there is no environment called `qa` (environments: dev, prod)"),
    ],
)
def test_what_does_not_exist_is_named_with_what_does(
    runtime: Runtime, line: str, expected: str
) -> None:
    reply = run(runtime, line)
    assert not reply.ok
    assert expected in reply.text
    assert serving(runtime) == []


def test_artifacts_that_fail_to_load_never_replace_what_serves(
    runtime: Runtime, recorder: Recorder
) -> None:
    live = run(runtime, "/deploy iris v1")
    assert isinstance(live, Outcome) and live.ok

    broken = run(runtime, "/deploy iris v3", recorder)

    assert isinstance(broken, Outcome) and not broken.ok
    assert (
        "iris v3 failed to start: a model server exited while starting (exit code 3): "
        "zipfile.BadZipFile: File is not a zip file" in broken.text
    )
    assert "iris v1 still serves at " + live.url in broken.text
    failure = recorder.events[-1]
    assert failure.kind is EventKind.FAILED
    assert 'File "' in failure.data["log_tail"]  # the traceback, for whoever digs further
    assert serving(runtime) == [("dev", "iris", 1, True)]
    response = httpx.post(live.url, json=BODY)
    assert response.status_code == 200 and response.headers["x-model"] == "iris/1"


def test_a_server_that_crashes_at_start_shows_its_log_tail(
    runtime: Runtime, recorder: Recorder
) -> None:
    outcome = run(runtime, "/deploy crasher v1", recorder)

    assert isinstance(outcome, Outcome) and not outcome.ok
    assert "exited while starting (exit code 70): fatal: cannot open /dev/accel0" in outcome.text
    assert "fatal: cannot open /dev/accel0" in outcome.log_tail
    assert "nothing was serving crasher in dev before, and nothing serves now" in outcome.text
    assert serving(runtime) == []


def test_a_memory_limit_below_what_the_model_needs_is_refused_by_the_server(
    runtime: Runtime,
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    outcome = run(runtime, "/scale iris 16mb")
    assert isinstance(outcome, Outcome) and not outcome.ok
    assert "more than the 16 MB limit" in outcome.log_tail
    assert serving(runtime) == [("dev", "iris", 1, True)]
    report = run(runtime, "/status iris")
    assert isinstance(report, StatusReport) and report.endpoints[0].resources == "1 cpu, 1 GB"


def test_a_port_taken_by_another_program_is_named(runtime: Runtime) -> None:
    live = run(runtime, "/deploy iris v1")
    assert isinstance(live, Outcome) and live.ok
    port = int(live.url.split(":")[2].split("/")[0])
    runtime.shut_down_endpoints()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 15
    while True:  # the old workers release the port once they have drained
        try:
            squatter.bind(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, f"port {port} was never released"
            time.sleep(0.05)
    squatter.listen()
    try:
        outcome = run(runtime, "/deploy iris v2")
        assert isinstance(outcome, Outcome) and not outcome.ok
        assert f"could not listen on 127.0.0.1:{port}: Address already in use" in outcome.text
        assert "free the port and run the command again" in outcome.text
        assert "iris v1 was serving before, but is down now" in outcome.text
    finally:
        squatter.close()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/scale iris 8cpu", "8 cpu is over the limit of dev: at most 4 cpu per endpoint"),
        ("/scale iris 8gb", "8 GB is over the limit of dev: at most 4 GB per endpoint"),
        ("/scale iris 3 replicas in prod", "there is no endpoint `iris` in prod"),
        ("/scale iris 5 replicas", "5 replicas is over the limit of dev: at most 3"),
        ("/scale iris 1gpu", "dev has no GPUs: leave out the gpu count"),
        ("/scale ghost 2cpu", "there is no endpoint `ghost` in dev (endpoints: iris)"),
    ],
)
def test_requests_over_limits_are_refused_and_change_nothing(
    runtime: Runtime, line: str, expected: str
) -> None:
    assert run(runtime, "/deploy iris v1").ok
    target = runtime.deployer.targets["dev"]
    before = target.health(EndpointRef("dev", "iris"))
    operations = len(runtime.repos.operations.recent())

    reply = run(runtime, line)

    assert isinstance(reply, Refusal)
    assert expected in reply.text
    assert len(runtime.repos.operations.recent()) == operations
    after = target.health(EndpointRef("dev", "iris"))
    assert (after.deployment, after.processes, after.up) == (
        before.deployment,
        before.processes,
        True,
    )
