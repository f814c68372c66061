"""Serving throughput and latency: a local endpoint against `mlflow models serve`, one run.

    python bench/serving.py [--rounds 2] [--duration 4] [--check]

Needs `wrk` (Debian: `apt-get install wrk`). Same model (iris v1, logistic regression), same
machine, all on loopback, keep-alive connections, one `wrk` thread:
- ours: `/deploy iris v1` through the bot's operation path (1 cpu, so 1 worker), then
  `/scale iris <n>cpu 1gb` for the scale curve;
- theirs: `mlflow models serve -m models:/iris/1 --env-manager local -w <n>`.
The matrix is 1, 8 and 64 connections x 1-row and 1,000-row `dataframe_split` bodies at equal
worker count, then 64 connections, 1 row, at 1, 2 and 4 workers. Each cell is measured
`--rounds` times, ours and theirs one right after the other (alternating who goes first), so a
machine shared with other work loads both alike; the table reports medians and their ratios.
`--check` exits 1 unless ours >= 1.2x theirs in requests/s with a p99 no worse, in every cell
of the matrix.

    python bench/serving.py --split [--rounds 3] [--duration 4] [--check]

measures ours alone, what splitting requests with a candidate costs: `/deploy iris v1`, then
iris v2 started beside it (as a canary rollout starts it), and 8 connections of 1-row bodies
with no split, with a split of 0% (canary 0, shadow 0: every request read the split and served
by v1), canary 10% and canary 100% (every request relayed to v2); in each round no split is
measured before v2 starts and after it is discarded. `--check` then exits 1 unless a split of
0% serves at least 0.95x the requests/s of no split.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from core.registry.source import RegistrySource  # noqa: E402
from core.resources import Resources  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from core.targets.base import EndpointRef, quiet_step  # noqa: E402
from core.targets.local.target import LocalTarget, Zygote  # noqa: E402

COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
CONNECTIONS = (1, 8, 64)
SIZES = (1, 1000)
WORKERS = (1, 2, 4)
SCRIPT = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()
"""


@dataclass
class Run:
    rps: float
    p99_ms: float


def body(rows: int) -> bytes:
    data = [ROWS[i % len(ROWS)] for i in range(rows)]
    return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, script: Path, connections: int, duration: float) -> Run:
    out = subprocess.run(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"),
            *("--timeout", "30s", "-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"failed requests under load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return Run(rps=rps, p99_ms=float(value) * _UNITS[unit])


def wait_ok(send: Callable[[], httpx.Response], deadline_s: float = 120) -> None:
    begun = time.monotonic()
    while time.monotonic() - begun < deadline_s:
        try:
            if send().status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError("never answered")


class Ours:
    def __init__(self, work: Path, uri: str) -> None:
        self.zygote = Zygote(state_dir=work / "zygote")
        self.runtime = Runtime(
            Settings(state_dir=work / "ours", mlflow_tracking_uri=uri), zygote=self.zygote
        )
        self.url = ""

    def _run(self, command: str) -> None:
        ctx = Context(
            core=self.runtime,
            actor=Actor(id=CONSOLE_USER, name="bench"),
            reporter=NullReporter(),
            text=command,
        )
        outcome = execute(command, ctx)
        assert outcome.ok, outcome  # type: ignore[union-attr]
        self.url = outcome.url  # type: ignore[union-attr]

    def serve(self, workers: int) -> str:
        if not self.url:
            self._run("/deploy iris v1")  # the default resources: 1 cpu, 1 replica
        if workers > 1:
            self._run(f"/scale iris {workers}cpu 1gb")
        wait_ok(lambda: httpx.post(self.url, content=body(1), headers=_JSON))
        return self.url

    def _target(self) -> tuple[LocalTarget, EndpointRef]:
        env = self.runtime.settings.default_environment
        target = self.runtime.deployer.targets[env]
        assert isinstance(target, LocalTarget)
        return target, EndpointRef(env, "iris")

    def candidate(self, version: int, deployment: str) -> str:
        """`version` started beside what serves, checked, not serving (as a canary starts)."""
        target, ep = self._target()
        mv = self.runtime.registry.resolve("iris", version=version)
        built = target.build(ep, mv, RegistrySource(self.runtime.registry), quiet_step())
        resources = Resources(cpu=1, memory_mb=1024, replicas=1)
        started = target.start(ep, mv, built, resources, deployment, quiet_step())
        target.smoke_test(ep, started, built, quiet_step())
        return deployment

    def split(self, candidate: str, canary: int) -> None:
        target, ep = self._target()
        target.split(ep, candidate, canary=canary, shadow=0, tolerance=0.0, step=quiet_step())

    def discard(self, candidate: str) -> None:
        target, ep = self._target()
        target.discard(ep, candidate, quiet_step())

    def close(self) -> None:
        self.runtime.shut_down_endpoints()
        self.runtime.close()
        self.zygote.close()


_JSON = {"Content-Type": "application/json"}


class Theirs:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.proc: subprocess.Popen[bytes] | None = None

    def serve(self, workers: int) -> str:
        self.close()
        port = free_port()
        # mlflow starts `uvicorn` by name: it must be on PATH, as in an activated virtualenv
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.uri, "PATH": path}
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/iris/1"),
                *("--env-manager", "local", "-w", str(workers), "-p", str(port), "-h", "127.0.0.1"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/invocations"
        wait_ok(lambda: httpx.post(url, content=body(1), headers=_JSON))
        return url

    def close(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait()
            self.proc = None


def measure(
    servers: dict[str, str],
    cells: list[tuple[int, int]],
    scripts: dict[int, Path],
    args: argparse.Namespace,
) -> dict[tuple[int, int], dict[str, list[Run]]]:
    results: dict[tuple[int, int], dict[str, list[Run]]] = {
        c: {n: [] for n in servers} for c in cells
    }
    for url in servers.values():  # warm both up: first requests pay lazy imports
        wrk(url, scripts[SIZES[0]], 8, 1)
    for r in range(args.rounds):
        for cell in cells:
            connections, rows = cell
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                results[cell][name].append(
                    wrk(servers[name], scripts[rows], connections, args.duration)
                )
    return results


def row(label: str, runs: dict[str, list[Run]]) -> tuple[str, float, float]:
    ours_rps = statistics.median(r.rps for r in runs["ours"])
    theirs_rps = statistics.median(r.rps for r in runs["theirs"])
    ours_p99 = statistics.median(r.p99_ms for r in runs["ours"])
    theirs_p99 = statistics.median(r.p99_ms for r in runs["theirs"])
    ratio = ours_rps / theirs_rps
    line = (
        f"| {label} | {ours_rps:,.0f} | {theirs_rps:,.0f} | **{ratio:.2f}x** "
        f"| {ours_p99:.1f} ms | {theirs_p99:.1f} ms |"
    )
    return line, ratio, ours_p99 / theirs_p99


SPLITS = {"no split": None, "split 0%": 0, "canary 10%": 10, "canary 100%": 100}


def split_cost(args: argparse.Namespace) -> int:
    """Ours with no split against ours with a split of 0%, 10% and 100% (`--split`)."""
    runs: dict[str, list[Run]] = {name: [] for name in SPLITS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=work / "artifacts")
        (work / "body-1.json").write_bytes(body(1))
        script = work / "post-1.lua"
        script.write_text(SCRIPT.format(body=work / "body-1.json"))
        ours = Ours(work, uri)
        try:
            url = ours.serve(1)
            wrk(url, script, 8, 1)  # warm up: first requests pay lazy imports
            for r in range(args.rounds):
                # no split measured before and after the split ones, so a machine getting
                # busier or quieter over a round weighs on both alike
                runs["no split"].append(wrk(url, script, 8, args.duration))
                candidate = ours.candidate(2, f"bench-candidate-{r}")
                for name, canary in SPLITS.items():
                    if canary is not None:
                        ours.split(candidate, canary)
                        runs[name].append(wrk(url, script, 8, args.duration))
                ours.discard(candidate)  # which ends the split
                runs["no split"].append(wrk(url, script, 8, args.duration))
        finally:
            ours.close()
    base = statistics.median(r.rps for r in runs["no split"])
    print(f"{os.cpu_count()} cores, {args.rounds} rounds of {args.duration:g} s, interleaved")
    print("| 8 conn., 1 row | req/s | vs no split | p99 |\n|---|---|---|---|")
    ratios = {}
    for name, found in runs.items():
        rps = statistics.median(r.rps for r in found)
        ratios[name] = rps / base
        p99 = statistics.median(r.p99_ms for r in found)
        print(f"| {name} | {rps:,.0f} | {ratios[name]:.3f}x | {p99:.1f} ms |")
    return 1 if args.check and ratios["split 0%"] < 0.95 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--check", action="store_true", help="fail unless >= 1.2x, p99 no worse")
    parser.add_argument(
        "--split", action="store_true", help="ours with no split against a split of 0%%"
    )
    args = parser.parse_args()
    if args.split:
        return split_cost(args)
    header = (
        "| | ours req/s | theirs req/s | ratio | ours p99 | theirs p99 |\n|---|---|---|---|---|---|"
    )
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=work / "artifacts")
        scripts = {}
        for rows in SIZES:
            (work / f"body-{rows}.json").write_bytes(body(rows))
            scripts[rows] = work / f"post-{rows}.lua"
            scripts[rows].write_text(SCRIPT.format(body=work / f"body-{rows}.json"))
        ours, theirs = Ours(work, uri), Theirs(uri)
        lines = [header]
        try:
            cells = [(c, rows) for rows in SIZES for c in CONNECTIONS]
            servers = {"ours": ours.serve(1), "theirs": theirs.serve(1)}
            matrix = measure(servers, cells, scripts, args)
            for (connections, rows), runs in matrix.items():
                label = f"1 worker, {connections} conn., {rows:,} row{'s' if rows > 1 else ''}"
                line, ratio, p99_ratio = row(label, runs)
                lines.append(line)
                failed |= ratio < 1.2 or p99_ratio > 1.0
            for workers in WORKERS[1:]:
                servers = {"ours": ours.serve(workers), "theirs": theirs.serve(workers)}
                scaled = measure(servers, [(64, 1)], scripts, args)
                lines.append(row(f"{workers} workers, 64 conn., 1 row", scaled[(64, 1)])[0])
        finally:
            theirs.close()
            ours.close()
    print(
        f"{os.cpu_count()} cores, {args.rounds} rounds of {args.duration:g} s per cell, interleaved"
    )
    print("\n".join(lines))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
