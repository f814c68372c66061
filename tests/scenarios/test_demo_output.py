"""`chatops demo` against a tracking server whose URI carries a password: nothing MLflow
prints on the way (its `View run … at:` and `View experiment at:` links name the tracking
URI) reaches the terminal with the password in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlflow_server import MlflowServer

PASSWORD = "s3cr3t-demo-pass"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[int]:
    """`mlflow server` over SQLite on loopback (it ignores the credentials sent to it)."""
    with MlflowServer(tmp_path) as server:
        yield server.port


def test_chatops_demo_prints_no_password_of_the_tracking_uri(
    tmp_path: Path, tracking_server: int
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CHATOPS_STATE_DIR": str(tmp_path / "state"),
        "CHATOPS_MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@127.0.0.1:{tracking_server}",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main(['demo']))"],
        cwd=tmp_path,  # no .env of the work tree
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert "Created the demo model iris" in shown
    assert "View experiment at: http://***@127.0.0.1:" in shown  # MLflow's line, still there
    assert PASSWORD not in shown
