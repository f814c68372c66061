"""`chatops run` starts only what it needs: a front that never loads MLflow, pandas,
scikit-learn or Alembic (its worker process does, and logs the readiness checks; a child
process migrates a new state database), and no model-server runtime when no environment
serves on this machine, whose worker then never loads pandas or scipy either."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from emulators.cml import RunningEmulator
from tests.conftest import free_port_range
from tests.scenarios.slack.conftest import ALICE, OPS, bot_environment, post_command
from tests.scenarios.slack.crash_support import (
    CML_KEY_VAR,
    ROOT,
    Bot,
    cml_environment,
)
from tests.scenarios.slack.test_run_http import unfinished_jobs
from tests.scenarios.slack.test_run_socket import slash
from tests.slack_api.emulator import SlackEmulator
from tests.slack_api.socket_mode import SocketModeServer

# `chatops run` as deployed, but writing the modules the front process loaded when it exits
# (a front that stopped cleanly ends with os._exit)
FRONT = """
import os, sys
from pathlib import Path
exit_now = os._exit  # a front that stopped cleanly ends with it, skipping atexit


def dump_then_exit(code):
    Path(sys.argv[1]).write_text("\\n".join(sorted(sys.modules)))
    exit_now(code)


os._exit = dump_then_exit
from bot.cli import main
sys.exit(main(["run", "--mode", sys.argv[2]]))
"""
pytest_plugins = ["tests.scenarios.slack.crash_support"]  # the fixtures cml and make_bot
# Alembic too: a new state database is migrated by a child process of the front
HEAVY = ("mlflow", "pandas", "sklearn", "alembic", "mako", "core.registry.mlflow", "core.runtime")
ZYGOTE = "core.targets.local.zygote"
# what `import mlflow` would load for its datasets and evaluation, seen by their native code
DATA_LIBRARIES = ("pandas", "scipy")


@pytest.fixture
def socket_server(slack_api: SlackEmulator) -> Iterator[SocketModeServer]:
    server = SocketModeServer().start()
    slack_api.socket_url = server.url
    yield server
    server.stop()


def wait_until(what: str, seen: Callable[[], object], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not seen():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}\n{log.read_text()}"
        time.sleep(0.05)


def answers(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.parametrize("mode", ["http", "socket"])
def test_the_front_loads_neither_mlflow_nor_pandas_nor_scikit_learn(
    slack_api: SlackEmulator,
    registry_uri: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    mode: str,
) -> None:
    low, _ = free_port_range()
    env = bot_environment(
        slack_api,
        port=low,
        state_dir=tmp_path / "state",
        tracking_uri=registry_uri,
        environments=[{"name": "dev", "port_range": [low + 1, low + 9], "admins": [ALICE]}],
    )
    server: SocketModeServer | None = None
    if mode == "socket":
        server = request.getfixturevalue("socket_server")
        env["SLACK_APP_TOKEN"] = slack_api.app_token
        env.pop("SLACK_SIGNING_SECRET")
    log, loaded = tmp_path / "bot.log", tmp_path / "front-modules.txt"
    with open(log, "w") as out:
        front = subprocess.Popen(
            [sys.executable, "-c", FRONT, str(loaded), mode],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{low}"
    try:
        wait_until("/readyz 200", lambda: answers(f"{base}/readyz") == 200, log)
        # what the front itself does: ack and record a command, answer a usage error, count
        if server is not None:
            server.wait_connections(1, timeout=60)
            server.wait_ack(server.send("slash_commands", slash("/mlops", "status public", "t1")))
            server.wait_ack(server.send("slash_commands", slash("/mlops", "frobnicate", "t2")))
        else:
            url = f"{base}/slack/events"
            assert post_command(url, slack_api, "/mlops", "status public").status_code == 200
            assert post_command(url, slack_api, "/mlops", "frobnicate").status_code == 200
        assert answers(f"{base}/metrics") == 200
        state = tmp_path / "state"
        wait_until("the status job ended", lambda: unfinished_jobs(state) == 0, log)
        # the readiness paragraph is still written at start-up: by the worker process
        wait_until("the readiness paragraph", lambda: "Readiness: " in log.read_text(), log)
    finally:
        front.send_signal(signal.SIGINT)
        front.wait(60)
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"], env=env, cwd=ROOT, capture_output=True
        )
    said = log.read_text()
    assert said.count("Readiness: ") == 1, said
    modules = set(loaded.read_text().split())
    assert "bot.slack.app" in modules  # the file is the front's
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], heavy
    if mode == "http":  # Socket Mode's client (aiohttp) is for Socket Mode only
        assert "aiohttp" not in modules


def zygotes(root: psutil.Process) -> list[psutil.Process]:
    found = []
    for p in [root, *root.children(recursive=True)]:
        try:
            if ZYGOTE in " ".join(p.cmdline()):
                found.append(p)
        except psutil.NoSuchProcess:
            pass
    return found


def data_libraries(process: psutil.Process) -> list[str]:
    """The data libraries whose compiled modules `process` has mapped."""
    parts = {part for m in process.memory_maps() for part in Path(m.path).parts}
    return sorted(set(DATA_LIBRARIES) & parts)


def the_worker(front: psutil.Process) -> psutil.Process:
    workers = [
        p for p in front.children(recursive=True) if "bot.slack.worker" in " ".join(p.cmdline())
    ]
    assert len(workers) == 1, front.children()
    return workers[0]


def test_a_bot_with_only_cml_environments_starts_no_model_server_runtime_nor_pandas(
    slack_api: SlackEmulator,
    cml: RunningEmulator,  # before make_bot: it stops after the bot does
    make_bot: Callable[..., Bot],
    registry_uri: str,
) -> None:
    bot = make_bot(cml_environment(cml), tracking_uri=registry_uri, **{CML_KEY_VAR: cml.api_key})
    bot.start()
    assert bot.proc is not None
    ready = f"http://127.0.0.1:{bot.port}/readyz"
    wait_until("/readyz 200", lambda: answers(ready) == 200, bot.log)
    assert post_command(bot.events_url, slack_api, "/deploy", "iris v1").status_code == 200
    slack_api.wait_for(
        lambda api: any("is live at" in m.text for m in api.messages(OPS)), timeout=120
    )
    front = psutil.Process(bot.proc.pid)
    assert zygotes(front) == []
    assert not (bot.state_dir / "logs" / "zygote.log").exists()
    # the worker resolved the version and fetched its input example through MLflow's client
    assert data_libraries(the_worker(front)) == []


def test_the_console_with_only_cml_environments_starts_no_model_server_runtime(
    cml: RunningEmulator, registry_uri: str, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "CHATOPS_STATE_DIR": str(tmp_path / "state"),
        "CHATOPS_MLFLOW_TRACKING_URI": registry_uri,
        "CHATOPS_ENVIRONMENTS": json.dumps([{**cml_environment(cml), "admins": ["console"]}]),
        "CHATOPS_CONSOLE_USER": "console",
        CML_KEY_VAR: cml.api_key,
    }
    log = tmp_path / "console.log"
    with open(log, "w") as out:
        console = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "console"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until("the console's prompt", lambda: "chatops>" in log.read_text(), log)
        assert zygotes(psutil.Process(console.pid)) == []
    finally:
        assert console.stdin is not None
        console.stdin.close()
        console.wait(60)
    assert not (tmp_path / "state" / "logs" / "zygote.log").exists()
