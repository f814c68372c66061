"""The warm spawner: a process that has imported MLflow, scikit-learn and pandas and loaded a
model once, so that the endpoint hosts it forks start serving in milliseconds, not seconds.

Protocol: one JSON object per line on stdin, one reply per line on the original stdout.
Its own stdout and stderr go to a log file, so stray library output cannot corrupt replies.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any


def _warm_up() -> None:
    """Import and exercise what serving a model touches, so the forks inherit it done: MLflow's
    loading and scoring, scikit-learn, and skops, which MLflow saves scikit-learn models with.

    The warm model is written by hand as a pyfunc model with a loader of its own (`_load_pyfunc`
    below), not with `mlflow.sklearn.save_model`: saving checks the model's requirements against
    what is installed, a second of reading every distribution's metadata that serving never
    needs (the bot checks a model's requirements itself before it starts one, and its model
    servers load with MLflow's own check left out).
    """
    import pickle
    import warnings

    import mlflow.pyfunc
    import mlflow.pyfunc.scoring_server
    import mlflow.sklearn
    import pandas as pd
    import psutil  # noqa: F401
    import uvicorn.protocols.http.httptools_impl  # noqa: F401
    from mlflow.models import Model, infer_signature
    from sklearn.linear_model import LogisticRegression

    from core.targets.local.scoring import Scorer

    frame = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0], "b": [1.0, 0.0, 1.0, 0.0]})
    estimator = LogisticRegression().fit(frame, [0, 1, 0, 1])
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import skops.io
        except ImportError:  # an MLflow that saves scikit-learn models without it
            pass
        else:
            skopsed = os.path.join(tmp, "warm.skops")
            skops.io.dump(estimator, skopsed)
            skops.io.load(skopsed)
        with open(os.path.join(tmp, "model.pkl"), "wb") as f:
            pickle.dump(estimator, f)
        model = Model(signature=infer_signature(frame, estimator.predict(frame)))
        mlflow.pyfunc.add_to_model(model, loader_module=__spec__.name, data="model.pkl")
        model.save(os.path.join(tmp, "MLmodel"))
        Scorer(mlflow.pyfunc.load_model(tmp, suppress_warnings=True)).invoke(
            body, "application/json"
        )


def _load_pyfunc(path: str) -> Any:
    """The warm-up's model, as MLflow loads a pyfunc model whose loader module this is."""
    import pickle

    with open(path, "rb") as f:
        return pickle.load(f)


def _spawn_host(request: dict[str, Any]) -> dict[str, Any]:
    from core.targets.local.host import host_main

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() == 0:
                os.closerange(3, write_fd)
                os.closerange(write_fd + 1, 1024)
                host_main(
                    endpoint=request["endpoint"],
                    port=int(request["port"]),
                    control_path=request["control"],
                    log_dir=request["log_dir"],
                    report_fd=write_fd,
                )
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as report:
        line = report.readline()
    if not line:
        return {"ok": False, "error": "the endpoint host exited before it started"}
    reply: dict[str, Any] = json.loads(line)
    return reply


def main() -> None:
    log_path = sys.argv[1] if len(sys.argv) > 1 else os.devnull
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # forked workers must not inherit pools
    started = time.perf_counter()
    _warm_up()
    replies.write(json.dumps({"ready": True, "warm_s": time.perf_counter() - started}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply = (
                _spawn_host(request)
                if request.get("op") == "host"
                else {"ok": False, "error": f"unknown op {request.get('op')!r}"}
            )
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
    # its owner closed our stdin: nothing is left to flush or hand over (the hosts it forked
    # are their own processes), so the interpreter's teardown of MLflow, scikit-learn and
    # pandas, over half a second its owner would wait for, is skipped
    replies.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
