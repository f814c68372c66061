"""A Slack worker takes commands before MLflow is loaded: importing MLflow (pandas, pyarrow,
scipy with it) takes seconds, so the core imports it only when the registry is first opened,
which the worker does after it told its front it is ready."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_worker_and_the_core_it_builds_load_no_mlflow_until_the_registry_is_opened(
    tmp_path: Path,
) -> None:
    probe = """
import sys
from bot.slack import worker
from core.config import Settings
from core.runtime import Runtime

runtime = Runtime(Settings())
before = sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "pandas", "sklearn"))
runtime.registry.models()
print(before, "mlflow" in sys.modules)
runtime.close()
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "CHATOPS_STATE_DIR": str(tmp_path / "state"),
        "CHATOPS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CHATOPS_ENVIRONMENTS": '[{"name": "dev", "admins": ["U1"]}]',
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[] True"


def test_threads_that_first_need_the_registry_at_once_all_get_it(tmp_path: Path) -> None:
    # a command's handler and the worker's warm-up open the registry at the same moment: MLflow
    # is imported by one of them while the other waits (not handed a module half made)
    probe = """
import sys, threading
from core.registry.mlflow import Registry
from core.registry.runs import RunRegistrar

uri = sys.argv[1]
start = threading.Barrier(4)
said = []

def models():
    start.wait()
    said.append(Registry(tracking_uri=uri).models())

def client():
    start.wait()
    said.append(type(Registry(tracking_uri=uri).client).__name__)

def experiment():
    start.wait()
    try:
        RunRegistrar(tracking_uri=uri).latest_run("nothing")
    except Exception as exc:
        said.append(type(exc).__name__)

threads = [threading.Thread(target=f) for f in (models, client, experiment, client)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted(map(str, said)))
"""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe, uri], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    said = done.stdout.split("\n")[-2]
    assert said == "['MlflowClient', 'MlflowClient', 'NotFound', '[]']", done.stderr
