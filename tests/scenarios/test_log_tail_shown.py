"""A failed start's log tail as people are shown it (Slack thread, console): no terminal
escape codes, and no server path in full (README: paths are shortened)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

from commands.base import Context
from commands.registry import execute
from core.admission.roles import Actor
from core.events import Outcome
from core.runtime import Runtime
from core.targets.local.target import Zygote
from tests.conftest import Recorder, make_settings

ADMIN = Actor(id="console", name="alice")
# an absolute path that is not elided: `/dir/…/name` is how a shortened one reads
FULL_PATH = re.compile(r"(?<![\w.~…/-])/[^\s/\"'…]+/[^\s\"'…]+")


def _log_noisy_model(tracking_uri: str, work: Path) -> None:
    """`noisy` v1: its load fails, in colour, as MLflow and many libraries print."""
    import mlflow
    import mlflow.pyfunc

    module = work / "noisy_model.py"
    module.write_text(
        textwrap.dedent("""
        import mlflow.pyfunc

        class Noisy(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                red, plain = chr(27) + "[1;31m", chr(27) + "[0m"
                raise RuntimeError(f"{red}cannot load{plain} the weights")

            def predict(self, context, model_input):
                return model_input
    """)
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    sys.path.insert(0, str(work))
    try:
        import noisy_model

        # its own experiment, named: another test may have left MLflow's active one set to
        # an id this new registry does not have
        experiment = mlflow.MlflowClient(tracking_uri).create_experiment("noisy")
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=noisy_model.Noisy(),
                code_paths=[str(module)],
                registered_model_name="noisy",
                pip_requirements=["mlflow"],
            )
    finally:
        sys.path.remove(str(work))
        sys.modules.pop("noisy_model", None)
        mlflow.set_tracking_uri(previous)


def test_a_failed_start_s_log_tail_has_no_escape_codes_and_no_full_server_path(
    tmp_path: Path, zygote: Zygote
) -> None:
    (tmp_path / "work").mkdir()
    uri = f"sqlite:///{tmp_path / 'registry' / 'mlflow.db'}"
    (tmp_path / "registry").mkdir()
    _log_noisy_model(uri, tmp_path / "work")
    runtime = Runtime(make_settings(tmp_path / "state", uri), zygote=zygote)
    try:
        line = "/deploy noisy v1"
        recorder = Recorder()
        outcome = execute(line, Context(core=runtime, actor=ADMIN, reporter=recorder, text=line))
    finally:
        runtime.shut_down_endpoints()
        runtime.close()

    assert isinstance(outcome, Outcome) and not outcome.ok
    tail = outcome.log_tail
    assert "RuntimeError: cannot load the weights" in tail, (outcome.text, tail)
    assert "\x1b" not in tail
    assert FULL_PATH.findall(tail) == [], tail
    assert 'File "…/' in tail  # the traceback still says where, shortened
