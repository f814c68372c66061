"""Start-up of the Slack front as deployed: time to `/healthz` and `/readyz`, and memory.

    python bench/front_start.py [--runs 3] [--environments local|cml] [--tree PATH]
                                [--restart] [--json FILE]

Starts `chatops run --mode http` (the front and its worker process) against the Slack Web
API emulator and a registry holding the demo model, `--runs` times, each in a fresh state
directory; reports for each start the time to the first `/healthz` and `/readyz` answers,
and to the answer of a signed `/mlops status` sent as soon as `/healthz` answered (the front
records it, the worker answers it once it takes work), the front's CPU time until `/readyz`,
and the resident memory (RSS) of the front, its worker and whatever else they started (the
model-server runtime), 3 s after the worker is warm (it logs the readiness checks then).
`--environments cml` configures one CML environment (served by the CML emulator) instead of
a local one.
`--tree` starts the bot of another checkout (an older commit, for a before/after figure).
`--restart` has each start find its state database made and current (`chatops db upgrade`
first, not timed): a bot restarted, rather than one started for the first time. `--json` also
writes the medians to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.registry.demo import create_demo_model  # noqa: E402
from emulators.cml import start_emulator  # noqa: E402
from tests.conftest import free_port_range  # noqa: E402
from tests.scenarios.slack.conftest import post_command  # noqa: E402
from tests.slack_api.emulator import SlackEmulator  # noqa: E402

TOKEN, SECRET, KEY_VAR = "xoxb-bench", "bench-signing-secret", "BENCH_CML_API_KEY"
USER = "U0BENCH"


def mb(processes: list[psutil.Process]) -> float:
    return sum(p.memory_info().rss for p in processes) / 2**20


def start_once(
    tree: Path, env: dict[str, str], port: int, log: Path, slack: SlackEmulator
) -> dict[str, float]:
    with open(log, "w") as out:
        began = time.monotonic()
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--mode", "http"],
            env=env,
            cwd=tree,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, float] = {}
    answered = len(slack.responses)
    try:
        while "readyz" not in seen or "answered" not in seen:
            for path in ("healthz", "readyz"):
                if path in seen:
                    continue
                try:
                    if httpx.get(f"{base}/{path}", timeout=1).status_code == 200:
                        seen[path] = time.monotonic() - began
                except httpx.HTTPError:
                    break
                if path == "healthz" and "healthz" in seen:
                    asked = post_command(
                        f"{base}/slack/events", slack, "/mlops", "status", user=USER, secret=SECRET
                    )
                    if asked.status_code != 200 or asked.content:
                        raise SystemExit(f"the first command was not acked: {asked.text}")
                if path == "readyz" and "readyz" in seen:
                    cpu = psutil.Process(bot.pid).cpu_times()
                    seen["front_cpu"] = cpu.user + cpu.system
            if "answered" not in seen and len(slack.responses) > answered:
                seen["answered"] = time.monotonic() - began
            if bot.poll() is not None or time.monotonic() - began > 180:
                raise SystemExit(f"the bot did not get ready:\n{log.read_text()}")
            time.sleep(0.01)
        front = psutil.Process(bot.pid)
        # memory once the worker is warm (registry open, model-server runtime up): it logs
        # the readiness checks then; and the checks of the first seconds settle
        while "Readiness: " not in log.read_text():
            if bot.poll() is not None or time.monotonic() - began > 180:
                raise SystemExit(f"the worker did not warm up:\n{log.read_text()}")
            time.sleep(0.05)
        time.sleep(3)
        others = front.children(recursive=True)
        worker = [p for p in others if "bot.slack.worker" in " ".join(p.cmdline())]
        seen["front_mb"] = mb([front])
        seen["worker_mb"] = mb(worker)
        seen["rest_mb"] = mb([p for p in others if p not in worker])
    finally:
        bot.send_signal(signal.SIGINT)
        bot.wait(60)
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "down"], env=env, cwd=tree, capture_output=True
        )
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--environments", choices=["local", "cml"], default="local")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to start")
    parser.add_argument("--restart", action="store_true", help="a state database made before")
    parser.add_argument("--json", type=Path, help="write the medians here too")
    args = parser.parse_args()
    tree = args.tree.resolve()
    work = Path(tempfile.mkdtemp(prefix="chatops-front-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    create_demo_model(tracking_uri=uri, artifact_root=work / "artifacts")
    slack = SlackEmulator(bot_token=TOKEN).start()
    cml = start_emulator(tracking_uri=uri, api_key="k3y", projects=[{"name": "demo", "id": "p1"}])
    rows = []
    try:
        for run in range(args.runs):
            port, _ = free_port_range()
            environment: dict[str, object] = {"name": "dev", "admins": [USER]}
            if args.environments == "cml":
                environment.update(target="cml", url=cml.url, api_key_env=KEY_VAR, project_id="p1")
            else:
                environment["port_range"] = [port + 1, port + 9]
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
                "PYTHONPATH": str(tree),
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.api_url,
                "PORT": str(port),
                "SLACK_HOST": "127.0.0.1",
                "CHATOPS_STATE_DIR": str(work / f"state{run}"),
                "CHATOPS_MLFLOW_TRACKING_URI": uri,
                "CHATOPS_ENVIRONMENTS": json.dumps([environment]),
                KEY_VAR: "k3y",
            }
            if args.restart:
                subprocess.run(
                    [sys.executable, "-m", "bot.cli", "db", "upgrade"],
                    env=env,
                    cwd=tree,
                    check=True,
                    capture_output=True,
                )
            row = start_once(tree, env, port, work / f"bot{run}.log", slack)
            rows.append(row)
            print(
                f"start {run + 1}: /healthz {row['healthz']:.2f} s, /readyz {row['readyz']:.2f} s,"
                f" first command answered {row['answered']:.2f} s,"
                f" front CPU {row['front_cpu']:.2f} s; RSS front {row['front_mb']:.0f} MB,"
                f" worker {row['worker_mb']:.0f} MB, model-server runtime {row['rest_mb']:.0f} MB"
                f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                flush=True,
            )
    finally:
        slack.stop()
        cml.stop()
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(
        f"median of {len(rows)} ({args.environments} environment): /healthz "
        f"{median['healthz']:.2f} s, /readyz {median['readyz']:.2f} s, first command answered "
        f"{median['answered']:.2f} s, front CPU "
        f"{median['front_cpu']:.2f} s; RSS front {median['front_mb']:.0f} MB, worker "
        f"{median['worker_mb']:.0f} MB, model-server runtime {median['rest_mb']:.0f} MB"
    )
    if args.json:
        args.json.write_text(json.dumps(median))


if __name__ == "__main__":
    main()
