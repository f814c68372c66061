"""A tracking URI with a password, through every failure path, reaches no sink: not Slack,
not the logs, not the operation, its events or the audit trail, not `/history`, not
`chatops audit export`; nor do the server's paths."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from bot.cli import main as chatops
from core.scrub import install_log_filter
from tests.mlflow_server import MlflowServer
from tests.scenarios.slack.conftest import RunningFront

PASSWORD = "s3cr3t-pass"
BOB = "U0BOB"  # a viewer: no role in any environment


@pytest.fixture
def missing_source(tmp_path: Path) -> Path:
    return tmp_path / "server" / "artifacts" / "gone" / "model"


@pytest.fixture
def mlflow_server(tmp_path: Path, missing_source: Path) -> Iterator[MlflowServer]:
    """Serves `ghost` v1, whose artifacts are missing from the server's disk."""
    root = tmp_path / "server"
    root.mkdir()
    client = MlflowClient(f"sqlite:///{root / 'm.db'}")
    client.create_registered_model("ghost")
    client.create_model_version("ghost", str(missing_source))
    server = MlflowServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def registry_uri(mlflow_server: MlflowServer) -> str:
    """The tracking URI the bot is configured with: credentials in it."""
    return f"http://alice:{PASSWORD}@127.0.0.1:{mlflow_server.port}"


def test_no_credential_or_server_path_reaches_any_sink(
    running_front: RunningFront,
    mlflow_server: MlflowServer,
    registry_uri: str,
    missing_source: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    front, runtime = running_front, running_front.runtime
    state_dir = runtime.settings.state_dir
    front.api.add_user(BOB, name="bob")
    install_log_filter([caplog.handler])  # as `chatops run` and its worker configure logging
    with caplog.at_level(logging.DEBUG):
        front.post("/deploy", "ghost v1")  # the registry answers; the artifacts are gone
        front.drain()
        mlflow_server.stop()
        front.post("/deploy", "ghost v1")  # the registry refuses connections
        front.drain()
        front.post("/history", "ghost", user=BOB)
        front.drain()

    monkeypatch.setenv("CHATOPS_STATE_DIR", str(state_dir))
    monkeypatch.setenv("CHATOPS_MLFLOW_TRACKING_URI", registry_uri)
    capsys.readouterr()
    assert chatops(["audit", "export", "--format", "json"]) == 0
    exported = capsys.readouterr().out

    repos = runtime.repos
    ops = repos.operations.recent()
    sinks = {
        "slack calls": [json.dumps(c.args) for c in front.api.calls],
        "slack responses": [json.dumps(r.body) for r in front.api.responses],
        "log records": caplog.text.splitlines(),
        "operations.error": [op.error or "" for op in ops],
        "events": [e.message for op in ops for e in repos.operations.events(op.id)],
        "audit rows": [f"{a.command} {a.detail}" for a in repos.audit.entries(limit=100)],
        "audit export": [exported],
    }
    # the failures did happen, and each sink has them to hide
    assert sorted(op.state for op in ops) == ["failed", "failed"]
    errors = "\n".join(sinks["operations.error"])
    assert "MLflow has no such thing, while fetching the artifacts of ghost v1" in errors
    assert f"the MLflow registry at http://***@127.0.0.1:{mlflow_server.port}" in errors
    history = [r for r in front.api.responses if r.name == "/history"]
    assert history and "ghost" in json.dumps(history[-1].body)
    assert json.loads(exported) and "deploy" in exported
    private = (PASSWORD, str(missing_source.parent), str(state_dir), str(mlflow_server.root))
    leaks = {
        sink: [text for text in texts if any(p in text for p in private)]
        for sink, texts in sinks.items()
    }
    assert leaks == {sink: [] for sink in sinks}
