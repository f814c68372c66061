"""`chatops audit export`: every attempt, allowed or refused, for compliance."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from core.admission.roles import Actor
from core.runtime import Runtime
from tests.scenarios.test_deploy_scale_status import run


def test_export_writes_every_attempt_as_json_and_csv(
    runtime: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from commands.base import Context
    from commands.registry import execute
    from tests.conftest import Recorder

    assert run(runtime, "/deploy iris v1").ok
    viewer = Actor(id="U0VIEW", name="vic")
    execute(
        "/scale iris 2cpu",
        Context(core=runtime, actor=viewer, reporter=Recorder(), text="/scale iris 2cpu"),
    )
    settings = runtime.settings
    monkeypatch.setenv("CHATOPS_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("CHATOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHATOPS_MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)

    out = tmp_path / "audit.json"
    assert main(["audit", "export", "--format", "json", "-o", str(out)]) == 0
    entries = json.loads(out.read_text())
    assert [(e["actor_id"], e["command"], e["outcome"]) for e in entries] == [
        ("console", "/deploy iris v1", "succeeded"),
        ("U0VIEW", "/scale iris 2cpu", "refused"),
    ]
    assert entries[0]["operation_id"].startswith("op-") and entries[0]["env"] == "dev"
    assert entries[1]["detail"] == "only admins of dev can scale"

    assert main(["audit", "export", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["outcome"] for r in rows] == ["succeeded", "refused"]

    assert main(["audit", "export", "--format", "json", "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out) == []
