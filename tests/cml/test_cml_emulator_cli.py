"""``chatops cml-emulator`` (``emulators.cml.main``) serves a workspace a client can use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cml_support import API_KEY, PROJECT_ID, MlflowRuns

from core.targets.cml import CMLClient

REPO = Path(__file__).resolve().parents[2]


def test_main_serves_seeded_projects_on_the_given_port(mlflow_runs: MlflowRuns) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "import sys; from emulators.cml import main; sys.exit(main(sys.argv[1:]))",
        *("--port", str(port), "--tracking-uri", mlflow_runs.tracking_uri),
        *("--project", f"demo={PROJECT_ID}", "--fast"),
    ]
    env = {**os.environ, "CML_EMULATOR_API_KEY": API_KEY}
    server = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_emulator/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.1)
        with CMLClient(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY) as client:
            assert client.get_project(PROJECT_ID).name == "demo"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)

    assert server.returncode == 0, output
    assert f"CML emulator on http://127.0.0.1:{port}" in output
    assert f"project demo: {PROJECT_ID}" in output
    assert API_KEY not in output
