"""A process that uses MLflow for its registry alone (the Slack worker of a bot that serves
no model on this machine) reads, writes and copies from the registry without loading pandas
or scipy; any other process imports MLflow whole, and can still load models after it opened
the registry (the console creates the demo model once it found the registry empty)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[3]

PROBE = """
import json
import sys
from pathlib import Path

from core.mlflow_imports import registry_only
from core.registry import evaluation
from core.registry.demo import DEMO_EXPERIMENT
from core.registry.mlflow import Registry
from core.registry.runs import RunRegistrar

if sys.argv[2] == "registry-only":
    registry_only()
uri, copy = sys.argv[1], Path(sys.argv[3])
registry = Registry(tracking_uri=uri)
champion = registry.resolve("iris", alias="champion")
registry.mark_serving(model="iris", version=1, alias="probe", tag="probe.serving", value="x")
marked = registry.resolve("iris", version=1).aliases
taken_off = registry.unmark_serving(model="iris", version=1, alias="probe", tag="probe.serving")
copied = (registry.download(champion, copy) / "MLmodel").exists()
run = RunRegistrar(tracking_uri=uri).latest_run(DEMO_EXPERIMENT)
print(champion.label, "probe" in marked, taken_off, copied, bool(run.run_id))
found = evaluation.logged(registry, champion)
example = json.loads((copy / "serving_input_example.json").read_text())
print(evaluation.read(registry, found, example).described())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "scipy")) == [])
if sys.argv[2] != "registry-only":
    import mlflow.sklearn
    from mlflow.models import ModelInputExample

    print(mlflow.sklearn.load_model(str(copy)).predict([[5.1, 3.5, 1.4, 0.2]]).tolist())
"""


def probe(registry_uri: str, role: str, tmp_path: Path) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, registry_uri, role, str(tmp_path / "copy")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_registry_only_process_uses_the_registry_without_pandas_or_scipy(
    registry_uri: str, tmp_path: Path
) -> None:
    said = probe(registry_uri, "registry-only", tmp_path)
    assert said == [
        "iris v2 True True True True",
        "evaluation dataset `iris-test` (45 rows, target `species`)",  # for the prediction diff
        "True",
    ]


def test_any_other_process_loads_models_after_it_opened_the_registry(
    registry_uri: str, tmp_path: Path
) -> None:
    said = probe(registry_uri, "whole", tmp_path)
    assert said[0] == "iris v2 True True True True"
    assert said[3] == "[0]"  # iris v2 says setosa
