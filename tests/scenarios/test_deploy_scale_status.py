"""End to end on the local target: deploy, predict, scale under load, redeploy, restart."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import httpx
import pytest

from bot.console.app import ConsoleApp
from commands.base import Context, StatusReport
from commands.registry import execute
from core.admission.roles import Actor
from core.config import Settings
from core.events import EventKind, Outcome
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import Recorder

ADMIN = Actor(id="console", name="alice")  # the embedded settings make the console an admin
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 4.4, 1.4], [6.3, 3.3, 6.0, 2.5]]
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def run(runtime: Runtime, line: str, recorder: Recorder | None = None):  # type: ignore[no-untyped-def]
    ctx = Context(core=runtime, actor=ADMIN, reporter=recorder or Recorder(), text=line)
    return execute(line, ctx)


def predict(url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(url, json=body, timeout=10)


def expected_predictions(registry_uri: str, version: int) -> list[int]:
    """What the registered version itself predicts for ROWS, loaded in this process."""
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(registry_uri)
    model = mlflow.pyfunc.load_model(f"models:/iris/{version}")
    return [int(p) for p in model.predict(pd.DataFrame(ROWS, columns=COLUMNS))]


def test_deploy_reports_each_step_and_serves_every_mlflow_format(
    runtime: Runtime, recorder: Recorder, registry_uri: str
) -> None:
    outcome = run(runtime, "/deploy iris v1", recorder)

    assert isinstance(outcome, Outcome) and outcome.ok, recorder.text
    assert outcome.url.startswith("http://127.0.0.1:") and outcome.url.endswith("/invocations")
    assert outcome.text == f"iris v1 is live at {outcome.url}"
    steps = [e.step for e in recorder.events if e.kind is EventKind.DONE]
    assert steps == ["resolve", "build", "start", "check", "switch"]
    assert "accuracy" in recorder.events[2].message  # the resolved version's metrics
    smoke = next(e.message for e in recorder.events if e.step == "check" and e.kind == "done")
    assert "smoke test answered [" in smoke and " ms" in smoke

    bodies = [
        {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
        {"dataframe_records": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]},
        {"instances": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]},
        {"inputs": {c: [row[i] for row in ROWS] for i, c in enumerate(COLUMNS)}},
    ]
    expected = expected_predictions(registry_uri, 1)
    for body in bodies:
        response = predict(outcome.url, body)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": expected}
        assert response.headers["x-model"] == "iris/1"
    assert httpx.get(outcome.url.replace("invocations", "ping")).status_code == 200
    bad = predict(outcome.url, {"dataframe_split": {"columns": ["nope"], "data": [[1]]}})
    assert bad.status_code == 400 and "message" in bad.json()


def test_scale_keeps_the_url_and_loses_no_request(runtime: Runtime) -> None:
    first = run(runtime, "/deploy iris v1")
    assert isinstance(first, Outcome) and first.ok
    body = {"dataframe_split": {"columns": COLUMNS, "data": ROWS[:1]}}
    results: list[int | str] = []
    stop = threading.Event()

    def client(keep_alive: bool) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set() and len(results) < 20000:
                try:
                    r = (
                        http.post(first.url, json=body)
                        if keep_alive
                        else httpx.post(first.url, json=body, timeout=10)
                    )
                    results.append(r.status_code)
                except httpx.HTTPError as exc:
                    results.append(repr(exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, False, True)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        scaled = run(runtime, "/scale iris 2cpu 512mb 2 replicas")
        time.sleep(0.3)
        redeployed = run(runtime, "/deploy iris v2")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert isinstance(scaled, Outcome) and scaled.ok, scaled
    assert isinstance(redeployed, Outcome) and redeployed.ok, redeployed
    assert scaled.url == first.url == redeployed.url
    failures = [r for r in results if r != 200]
    assert len(results) > 50 and failures == [], failures[:5]
    assert predict(first.url, body).headers["x-model"] == "iris/2"

    report = run(runtime, "/status iris")
    assert isinstance(report, StatusReport)
    (ep,) = report.endpoints
    assert (ep.model, ep.version, ep.up, ep.replicas) == ("iris", 2, True, 2)
    assert ep.resources == "2 cpu, 512 MB"
    assert ep.detail.startswith("4/4 processes up")  # 2 replicas x 2 cpu
    # each model-server process's own memory, as its watchdog reads it against the limit
    largest = re.fullmatch(r"4/4 processes up, at most (\d+) MB resident per process", ep.detail)
    assert largest is not None, ep.detail
    assert 20 < int(largest.group(1)) < 512, ep.detail


def test_restarted_bot_adopts_live_endpoints_and_shows_dead_ones_down(
    settings: Settings, zygote: Zygote
) -> None:
    first = Runtime(settings, zygote=zygote)
    try:
        assert run(first, "/deploy iris v1").ok
        assert run(first, "/deploy iris v2 to prod").ok
    finally:
        first.close()

    second = Runtime(settings, zygote=zygote)  # the bot again, same state directory
    try:
        report = run(second, "/status")
        assert isinstance(report, StatusReport)
        assert [(e.env, e.name, e.version, e.up) for e in report.endpoints] == [
            ("dev", "iris", 1, True),
            ("prod", "iris", 2, True),
        ]
        url = report.endpoints[1].url
        assert (
            predict(url, {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}).status_code == 200
        )

        host_pid = second.deployer.targets["prod"]._call(  # type: ignore[attr-defined]
            _ref("prod"), {"op": "status"}
        )["pid"]
        os.kill(host_pid, signal.SIGKILL)
        _wait_until(lambda: not _answers(url))
        report = run(second, "/status")
        assert isinstance(report, StatusReport)
        assert [(e.env, e.up) for e in report.endpoints] == [("dev", True), ("prod", False)]
        assert "no server process" in report.endpoints[1].detail
    finally:
        second.shut_down_endpoints()
        second.close()


def test_console_runs_scripted_commands_and_exits_non_zero_on_failure(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    app = ConsoleApp(runtime, actor="alice", console=Console(width=200, highlight=False))
    assert app.run_lines(["/deploy iris v1", "/status"]) is True
    out = capsys.readouterr().out
    assert "iris v1 is live at http://127.0.0.1:" in out
    assert "Endpoints" in out and " up " in out
    assert app.run_lines(["/status", "/deploy iris v9"]) is False
    out = capsys.readouterr().out
    assert "iris has no version 9 (versions: v1, v2, v3)" in out


def _ref(env: str):  # type: ignore[no-untyped-def]
    from core.targets.base import EndpointRef

    return EndpointRef(env, "iris")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url.replace("invocations", "ping"), timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
