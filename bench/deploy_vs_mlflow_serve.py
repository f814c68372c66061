"""Time to a serving model: `/deploy` on the local target against `mlflow models serve`.

    python bench/deploy_vs_mlflow_serve.py [--runs 3] [--check] [--cold-only] [--tree PATH]
                                           [--json FILE]

Measured on one machine in one run, all on loopback:
- ours, warm: the bot is running (its model-server runtime warmed at start, as it does);
  `/deploy iris v1` on a new endpoint -> first successful prediction at the endpoint URL.
- ours, cold: `chatops console -c "/deploy iris v1"` started from nothing -> first prediction.
- theirs: `mlflow models serve -m models:/iris/1 --env-manager local` -> first successful /ping.
The cold starts and `mlflow models serve` alternate, run by run.
`--check` exits 1 unless ours (warm) <= 0.1x theirs and ours (cold) <= 1.0x. `--cold-only`
leaves out the warm deploys; `--tree` starts the cold console of another checkout (an older
commit, for a before/after figure); `--json` also writes the medians to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commands.base import Context  # noqa: E402
from commands.registry import execute  # noqa: E402
from core.admission.roles import Actor  # noqa: E402
from core.config import CONSOLE_USER, Settings  # noqa: E402
from core.events import NullReporter  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from core.targets.local.target import Zygote  # noqa: E402

BODY = {
    "dataframe_split": {
        "columns": [
            "sepal length (cm)",
            "sepal width (cm)",
            "petal length (cm)",
            "petal width (cm)",
        ],
        "data": [[5.1, 3.5, 1.4, 0.2]],
    }
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(send: object, deadline_s: float = 120) -> float:
    begun = time.perf_counter()
    while time.perf_counter() - begun < deadline_s:
        try:
            if send().status_code == 200:  # type: ignore[operator]
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    raise RuntimeError("never answered")


def ours_warm(work: Path, uri: str, zygote: Zygote, run: int) -> float:
    state = work / f"warm-{run}"
    settings = Settings(state_dir=state, mlflow_tracking_uri=uri)
    runtime = Runtime(settings, zygote=zygote)
    _ = runtime.registry.client  # opened at start by a running bot (warm_up)
    try:
        begun = time.perf_counter()
        ctx = Context(
            core=runtime,
            actor=Actor(id=CONSOLE_USER, name="bench"),
            reporter=NullReporter(),
            text="/deploy iris v1",
        )
        outcome = execute("/deploy iris v1", ctx)
        assert outcome.ok, outcome
        done = wait_ok(lambda: httpx.post(outcome.url, json=BODY))  # type: ignore[union-attr]
        return done - begun
    finally:
        runtime.shut_down_endpoints()
        runtime.close()


def ours_cold(work: Path, uri: str, run: int, tree: Path = ROOT) -> float:
    state = work / f"cold-{run}"
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "CHATOPS_STATE_DIR": str(state),
        "CHATOPS_MLFLOW_TRACKING_URI": uri,
    }
    begun = time.perf_counter()
    said = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "-c", "/deploy iris v1"],
        env={**env, "COLUMNS": "300"},
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # the URL as the console says it, once the command returned (as a user reads it)
    url = said.rpartition(" is live at ")[2].split()[0]
    done = wait_ok(lambda: httpx.post(url, json=BODY))
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "down"],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return done - begun


def theirs(uri: str) -> float:
    port = free_port()
    # mlflow starts `uvicorn` by name: it must be on PATH, as in an activated virtualenv
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    begun = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/iris/1",
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        done = wait_ok(lambda: httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1))
        assert httpx.post(f"http://127.0.0.1:{port}/invocations", json=BODY).status_code == 200
        return done - begun
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="fail unless ours <= 0.1x theirs")
    parser.add_argument("--cold-only", action="store_true", help="no deploys on a running bot")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to start cold")
    parser.add_argument("--json", type=Path, help="write the medians here too")
    args = parser.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=work / "artifacts")
        warm = []
        if not args.cold_only:
            zygote = Zygote(state_dir=work)
            zygote._ensure()  # the bot warms this at start
            try:
                warm = [ours_warm(work, uri, zygote, i) for i in range(args.runs)]
            finally:
                zygote.close()
        # one after the other, so a machine shared with other work loads both alike
        cold, base = [], []
        for i in range(args.runs):
            cold.append(ours_cold(work, uri, i, tree))
            base.append(theirs(uri))
    rows = [
        ("ours, bot running: /deploy -> first prediction", warm),
        ("ours, from a cold start: chatops console -c -> first prediction", cold),
        ("mlflow models serve -> first /ping", base),
    ]
    print(f"{'':66}{'median':>9}{'min':>9}{'max':>9}")
    for name, values in rows:
        if values:
            print(
                f"{name:66}{statistics.median(values):8.3f}s{min(values):8.3f}s{max(values):8.3f}s"
            )
    cold_ratio = statistics.median(cold) / statistics.median(base)
    if args.json:
        medians = {"cold_s": statistics.median(cold), "theirs_s": statistics.median(base)}
        args.json.write_text(json.dumps({**medians, "cold_ratio": cold_ratio}))
    if not warm:
        print(f"ratio (cold start): {cold_ratio:.3f}x   target <= 1.0x")
        return 1 if args.check and cold_ratio > 1.0 else 0
    ratio = statistics.median(warm) / statistics.median(base)
    print(
        f"ratio (bot running): {ratio:.3f}x   ratio (cold start): {cold_ratio:.3f}x   "
        f"target <= 0.1x (bot running), <= 1.0x (cold start)"
    )
    return 1 if args.check and (ratio > 0.1 or cold_ratio > 1.0) else 0


if __name__ == "__main__":
    sys.exit(main())
