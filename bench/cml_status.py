"""`/status` over 100 CML endpoints, against the CML emulator answering each API call in 50 ms.

    .venv/bin/python bench/cml_status.py [--endpoints 100] [--latency 0.05] [--check] [--show]

The emulator runs in its own process (as a workspace is remote), its switches set through
its admin endpoints.
- ours: `Deployer.status`, which checks every endpoint's health at once (a thread pool).
- sequential: the same `CMLTarget.health` checks, one endpoint after another.
Both run twice on a new target: "cold" knows nothing yet (as after a bot restart: it finds
each endpoint's serving deployment through the API), "warm" remembers where it found them.
Then the API calls of one full deploy and of one scale, with the emulator's realistic stage
timings and the target's poll intervals (1 s growing to 10 s) both scaled by 1/10, so the
number of polls is the one at full scale. `--check` exits 1 unless ours <= 0.1x sequential.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.admission.deployer import Deployer  # noqa: E402
from core.admission.roles import Actor  # noqa: E402
from core.config import Environment, Limits, Settings  # noqa: E402
from core.events import Event, Outcome  # noqa: E402
from core.registry.demo import create_demo_model  # noqa: E402
from core.registry.mlflow import Registry  # noqa: E402
from core.resources import Resources  # noqa: E402
from core.runtime import wire  # noqa: E402
from core.store.models import new_id  # noqa: E402
from core.store.repos import Repositories, Serving  # noqa: E402
from core.targets.base import EndpointRef, quiet_step  # noqa: E402
from core.targets.cml.target import CMLTarget  # noqa: E402
from emulators.cml import Timings  # noqa: E402

API_KEY = "bench-cml-key-0f1e2d3c"
PROJECT = "b3nc-h000-0000-0001"
ADMIN = Actor(id="console", name="bench")


class Emulator:
    """`chatops cml-emulator` in a process of its own."""

    def __init__(self, tracking_uri: str, log: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        code = "import sys; from emulators.cml import main; sys.exit(main())"
        self._log = log.open("w")
        options = ["--port", str(port), "--fast", "--tracking-uri", tracking_uri]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code, *options, "--project", f"bench={PROJECT}"],
            env={**os.environ, "CML_EMULATOR_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the CML emulator did not start; see {log}")

    def set(self, which: str, **values: Any) -> None:
        httpx.post(f"{self.url}/_emulator/{which}", json=values, timeout=5).raise_for_status()

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._log.close()


class Transcript:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def report(self, event: Event) -> None:
        self.events.append(event)


def environment(url: str) -> Environment:
    return Environment(
        name="cml",
        target="cml",
        url=url,
        project_id=PROJECT,
        default=Resources(cpu=1, memory_mb=2048),
        limits=Limits(cpu=8, memory_mb=16384, replicas=4),
    )


def target(env: Environment, *, poll_initial_s: float, poll_max_s: float) -> CMLTarget:
    return CMLTarget.connect(
        env=env, api_key=API_KEY, poll_initial_s=poll_initial_s, poll_max_s=poll_max_s
    )


def deployer(root: Path, tracking_uri: str, cml: CMLTarget) -> Deployer:
    settings = Settings(
        state_dir=root / "state",
        mlflow_tracking_uri=tracking_uri,
        environments=[cml.env],
        default_environment=cml.env.name,
    )
    return wire(
        settings=settings,
        repos=Repositories.open(f"sqlite:///{root / 'state' / 'chatops.db'}"),
        registry=Registry(tracking_uri=tracking_uri),
        targets={cml.env.name: cml},
    ).deployer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    parser.add_argument("--check", action="store_true", help="exit 1 unless ours <= 0.1x")
    parser.add_argument("--show", action="store_true", help="print the deploy's events")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    with tempfile.TemporaryDirectory(prefix="cml-status-bench-") as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        create_demo_model(tracking_uri=uri, artifact_root=root / "artifacts")
        names = [f"iris-{i:03d}" for i in range(args.endpoints)]
        emulator = Emulator(uri, root / "emulator.log")
        try:
            return run(args, root, uri, emulator, names)
        finally:
            emulator.stop()


def run(
    args: argparse.Namespace, root: Path, uri: str, emulator: Emulator, names: list[str]
) -> int:
    env = environment(emulator.url)
    repos = Repositories.open(f"sqlite:///{root / 'state' / 'chatops.db'}")
    print(f"placing {len(names)} endpoints serving iris v1 (no latency) ...", flush=True)
    begun = time.perf_counter()
    place_endpoints(env, uri, repos, names)
    print(f"  {len(names)} endpoints serving after {time.perf_counter() - begun:.1f} s")

    emulator.set("faults", latency=args.latency)
    refs = [EndpointRef(r.env, r.name) for r in repos.endpoints.every(env.name)]
    figures: dict[str, tuple[float, int]] = {}
    for way in ("ours", "sequential"):
        fresh = target(env, poll_initial_s=0.01, poll_max_s=0.1)
        bot = deployer(root, uri, fresh)
        for state in ("cold", "warm"):
            before = fresh.calls.total
            took, up = status_of(bot) if way == "ours" else one_by_one(fresh, refs)
            assert up == len(refs), f"{way} {state}: {up} of {len(refs)} endpoints up"
            figures[f"{way} {state}"] = (took, fresh.calls.total - before)
        bot.close()

    print(f"\n/status over {len(refs)} endpoints, {args.latency * 1000:.0f} ms per API call:")
    for key, (took, calls) in figures.items():
        print(f"  {key:16} {took:7.2f} s  ({calls} API calls)")
    ratios = {
        state: figures[f"ours {state}"][0] / figures[f"sequential {state}"][0]
        for state in ("cold", "warm")
    }
    for state, ratio in ratios.items():
        print(f"  ours / sequential ({state}): {ratio:.3f}x (target <= 0.1x)")

    emulator.set("faults", latency=0.0)
    deploy_calls, scale_calls, transcript = one_deploy(root, uri, emulator)
    print(
        f"\nAPI calls, realistic stage timings and poll intervals scaled by 1/10:\n"
        f"  one full deploy (registry lookup, model, build, deployment, waits): {deploy_calls}\n"
        f"  one scale (same build, new deployment, old one stopped): {scale_calls}"
    )
    if args.show:
        for event in transcript.events:
            print(f"  {event.elapsed_s:6.2f}s {event.kind:9} {event.step:7} {event.message}")
    if args.check and max(ratios.values()) > 0.1:
        print("FAILED: ours is slower than 0.1x the sequential way")
        return 1
    return 0


def place_endpoints(env: Environment, uri: str, repos: Repositories, names: list[str]) -> None:
    """Endpoints set up through the target's own steps, as a rollout does (the Deployer would
    need one registered model per endpoint: its endpoints are named after their model)."""
    cml = target(env, poll_initial_s=0.01, poll_max_s=0.1)
    registry = Registry(tracking_uri=uri)
    mv = registry.resolve("iris", version=1)

    def place(name: str) -> None:
        ep, step = EndpointRef(env.name, name), quiet_step()
        built = cml.build(ep, mv, registry, step)
        started = cml.start(ep, mv, built, env.default, new_id("dep"), step)
        cml.smoke_test(ep, started, built)
        url = cml.switch(ep, started.deployment, None)
        repos.endpoints.save(
            Serving(
                env=env.name,
                name=name,
                target=cml.kind,
                model=mv.model,
                version=mv.version,
                resources=env.default,
                url=url,
                deployment=started.deployment,
            )
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(place, names))
    cml.close()


def status_of(bot: Deployer) -> tuple[float, int]:
    begun = time.perf_counter()
    rows = bot.status()
    took = time.perf_counter() - begun
    assert isinstance(rows, list), rows
    return took, sum(row.up for row in rows)


def one_by_one(cml: CMLTarget, refs: list[EndpointRef]) -> tuple[float, int]:
    begun = time.perf_counter()
    up = sum(cml.health(ref).up for ref in refs)
    return time.perf_counter() - begun, up


def one_deploy(root: Path, uri: str, emulator: Emulator) -> tuple[int, int, Transcript]:
    scaled = {name: value / 10 for name, value in asdict(Timings.realistic()).items()}
    emulator.set("timings", **scaled)
    cml = target(environment(emulator.url), poll_initial_s=0.1, poll_max_s=1.0)
    bot = deployer(root / "one", uri, cml)
    transcript = Transcript()
    deployed = bot.deploy(
        model="iris", version=1, actor=ADMIN, command="/deploy iris v1", reporter=transcript
    )
    assert isinstance(deployed, Outcome) and deployed.ok, deployed
    deploy_calls = cml.api_calls
    scaled = bot.scale(
        endpoint="iris", replicas=2, actor=ADMIN, command="/scale iris 2", reporter=transcript
    )
    assert isinstance(scaled, Outcome) and scaled.ok, scaled
    scale_calls = cml.api_calls
    bot.close()
    return deploy_calls, scale_calls, transcript


if __name__ == "__main__":
    sys.exit(main())
