"""The local target: endpoints served by model-server processes on 127.0.0.1.

Mapping of resources: each replica runs ceil(cpu) worker processes, every worker holds at most
`memory` resident (it exits when it goes over, and its host starts a new one), and all workers
of an endpoint accept on the endpoint's one port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.config import Environment
from core.errors import BuildFailed, DeployFailed, StepTimeout, TargetUnavailable
from core.resources import Resources
from core.targets.base import Built, Checked, EndpointRef, Health, Progress, Started, Step
from core.targets.local.host import log_tail

if TYPE_CHECKING:
    from core.registry.mlflow import ModelVersion, Registry

ZYGOTE_START_S = 120.0


class Zygote:
    """The warm spawner process, shared by every local environment of one bot."""

    def __init__(self, *, state_dir: Path, python: str = sys.executable) -> None:
        self.state_dir = state_dir
        self.python = python
        self._proc: subprocess.Popen[str] | None = None  # warm and answering
        self._launched: subprocess.Popen[str] | None = None  # started, still warming
        self._starting: subprocess.Popen[str] | None = None  # being waited for, under _lock
        self._lock = threading.Lock()
        self.warm_s: float | None = None

    @property
    def _log(self) -> Path:
        return self.state_dir / "logs" / "zygote.log"

    @property
    def ready(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def prewarm(self) -> None:
        """Start the process now and let it warm in the background; the first spawn waits
        for it if needed."""
        with self._lock:
            if self._proc is None and self._launched is None:
                self._launched = self._launch()

        def warm() -> None:
            with contextlib.suppress(TargetUnavailable):  # told at the first spawn instead
                self._ensure()

        threading.Thread(target=warm, daemon=True, name="zygote-warmup").start()

    def _launch(self) -> subprocess.Popen[str]:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return subprocess.Popen(
            [self.python, "-m", "core.targets.local.zygote", str(self._log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def _ensure(self) -> subprocess.Popen[str]:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self._proc
            proc, self._launched = self._launched or self._launch(), None
            self._starting = proc
            try:
                line = _readline(proc, ZYGOTE_START_S)
            finally:
                self._starting = None
            if not line:
                proc.kill()
                raise TargetUnavailable(
                    "the local model-server runtime failed to start", log_tail=log_tail(self._log)
                )
            self.warm_s = float(json.loads(line).get("warm_s", 0))
            self._proc = proc
            return proc

    def spawn_host(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._ensure()
        with self._lock:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"op": "host", **request}) + "\n")
            proc.stdin.flush()
            line = _readline(proc, 30)
        if not line:
            raise TargetUnavailable("the local model-server runtime stopped answering")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        starting = self._starting
        if starting is not None:  # a warm-up under way ends now, instead of holding the lock
            starting.kill()
        with self._lock:
            if self._launched is not None:
                self._launched.kill()
                self._launched = None
            if self._proc is not None and self._proc.poll() is None:
                assert self._proc.stdin is not None
                self._proc.stdin.close()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
            self._proc = None


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


class LocalTarget:
    kind = "local"

    def __init__(
        self, *, env: Environment, state_dir: Path, zygote: Zygote, start_timeout_s: float = 60.0
    ) -> None:
        self.env = env
        self.state_dir = state_dir
        self.zygote = zygote
        self.start_timeout_s = start_timeout_s
        self._ports_lock = threading.Lock()
        # no keep-alive: an idle connection would hold a retiring worker for its drain time
        self._http = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))

    # -- where things live -----------------------------------------------------------------
    def _run_dir(self) -> Path:
        path = self.state_dir / "run"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _control_path(self, ep: EndpointRef) -> str:
        path = str(self._run_dir() / f"{ep.env}-{ep.name}.sock")
        if len(path) < 100:
            return path
        digest = hashlib.sha1(path.encode()).hexdigest()[:16]  # unix socket paths are short
        return f"/tmp/chatops-{digest}.sock"

    def _log_dir(self, ep: EndpointRef) -> Path:
        return self.state_dir / "logs" / ep.env / ep.name

    def port(self, ep: EndpointRef) -> int:
        """The endpoint's port: kept for its life, so its URL never changes."""
        with self._ports_lock:
            path = self._run_dir() / "ports.json"
            ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
            key = f"{ep.env}/{ep.name}"
            if key in ports:
                return ports[key]
            taken = set(ports.values())
            low, high = self.env.port_range
            for candidate in range(low, high + 1):
                if candidate not in taken and _bindable(candidate):
                    ports[key] = candidate
                    path.write_text(json.dumps(ports, indent=1))
                    return candidate
            raise DeployFailed(f"no free port left in {low}-{high} for environment {ep.env}")

    def url(self, ep: EndpointRef) -> str:
        return f"http://127.0.0.1:{self.port(ep)}/invocations"

    # -- talking to the endpoint host ------------------------------------------------------
    def _call(self, ep: EndpointRef, request: dict[str, Any]) -> dict[str, Any] | None:
        """The host's reply, or None when no host runs for this endpoint."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(10)
                conn.connect(self._control_path(ep))
                conn.sendall((json.dumps(request) + "\n").encode())
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return None
                    buf += chunk
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError as exc:
            raise TargetUnavailable(f"the server host of {ep.name} did not answer: {exc}") from None
        reply: dict[str, Any] = json.loads(buf)
        return reply

    def _ensure_host(self, ep: EndpointRef, progress: Progress) -> dict[str, Any]:
        status = self._call(ep, {"op": "status"})
        if status is not None:
            return status
        port = self.port(ep)
        if not self.zygote.ready:
            progress("waiting for the model-server runtime to warm up (once per bot start)")
        progress(f"opening 127.0.0.1:{port} for {ep.name}")
        reply = self.zygote.spawn_host(
            {
                "endpoint": ep.name,
                "port": port,
                "control": self._control_path(ep),
                "log_dir": str(self._log_dir(ep)),
            }
        )
        if not reply.get("ok"):
            raise DeployFailed(
                f"could not listen on 127.0.0.1:{port}: {reply.get('error')}"
                f"{_who_holds(port)} — free the port and run the command again"
            )
        status = self._call(ep, {"op": "status"})
        if status is None:
            raise DeployFailed(
                f"the server host of {ep.name} exited right after it started",
                log_tail=log_tail(self._log_dir(ep) / "host.log"),
            )
        return status

    # -- the Target interface --------------------------------------------------------------
    def build(self, ep: EndpointRef, mv: ModelVersion, registry: Registry, step: Step) -> Built:
        path = registry.download(mv, self.state_dir / "artifacts" / mv.model / str(mv.version))
        mlmodel = (path / "MLmodel").read_text()
        if "python_function" not in mlmodel:
            raise BuildFailed(
                f"{mv.label} has no python_function flavor, so it cannot be served",
                log_tail=mlmodel[-2000:],
            )
        example_path = path / "serving_input_example.json"
        example = json.loads(example_path.read_text()) if example_path.exists() else None
        detail = "artifacts fetched and verified" + ("" if example else " (no input example)")
        return Built(ref=str(path), example=example, detail=detail)

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        if resources.gpus:
            raise DeployFailed("the local target has no GPUs: leave out the gpu count")
        self._ensure_host(ep, step.say)
        workers = resources.replicas * max(1, math.ceil(resources.cpu))
        spec = {
            "deployment": deployment,
            "model": mv.model,
            "version": mv.version,
            "model_path": built.ref,
            "memory_mb": resources.memory_mb,
        }
        step.say(f"starting {workers} model server process{'es' if workers > 1 else ''}")
        reply = self._call(ep, {"op": "start", "spec": spec, "workers": workers})
        if reply is None or not reply.get("ok"):
            raise DeployFailed(f"the server host of {ep.name} refused the deployment: {reply}")
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            dep = self._deployment(ep, deployment)
            if dep is None:
                raise DeployFailed(f"the server host of {ep.name} stopped during the start")
            if dep["state"] in ("ready", "active"):
                ports = ", ".join(str(w["private_port"]) for w in dep["workers"])
                return Started(
                    deployment=deployment,
                    url=self.url(ep),
                    detail=f"{workers} process(es), private ports {ports}",
                )
            if dep["state"] == "failed":
                raise DeployFailed(
                    f"{mv.label} failed to start: {dep['error']}", log_tail=dep["log_tail"]
                )
            time.sleep(0.01)
        self.stop(ep, deployment)
        raise StepTimeout(
            f"{mv.label} was not ready after {self.start_timeout_s:.0f}s",
            log_tail=log_tail(self._log_dir(ep) / f"{deployment}.log"),
        )

    def _deployment(self, ep: EndpointRef, deployment: str) -> dict[str, Any] | None:
        status = self._call(ep, {"op": "status"})
        if status is None:
            return None
        return next((d for d in status["deployments"] if d["deployment"] == deployment), None)

    def check(self, ep: EndpointRef, started: Started, built: Built) -> Checked:
        dep = self._deployment(ep, started.deployment)
        if dep is None:
            raise DeployFailed(f"deployment {started.deployment} is gone")
        ports = [w["private_port"] for w in dep["workers"]]
        try:
            for port in ports:
                self._http.get(f"http://127.0.0.1:{port}/ping").raise_for_status()
            if built.example is None:
                return Checked(latency_ms=0.0, prediction=None)
            begun = time.perf_counter()
            response = self._http.post(
                f"http://127.0.0.1:{ports[0]}/invocations", json=built.example
            )
            latency = (time.perf_counter() - begun) * 1000
        except httpx.HTTPError as exc:
            raise DeployFailed(
                f"the new model server did not answer: {exc}",
                log_tail=log_tail(self._log_dir(ep) / f"{started.deployment}.log"),
            ) from None
        if response.status_code != 200:
            raise DeployFailed(
                f"smoke test failed with HTTP {response.status_code}: {response.text[:500]}"
            )
        return Checked(latency_ms=latency, prediction=response.json().get("predictions"))

    def switch(self, ep: EndpointRef, new: str, old: str | None) -> str:
        reply = self._call(ep, {"op": "activate", "deployment": new})
        if reply is None or not reply.get("ok"):
            raise DeployFailed(f"could not route traffic to the new deployment: {reply}")
        if old and old != new:
            self._call(ep, {"op": "retire", "deployment": old})
        return self.url(ep)

    def stop(self, ep: EndpointRef, deployment: str) -> None:
        self._call(ep, {"op": "retire", "deployment": deployment})
        status = self._call(ep, {"op": "status"})
        live = ("starting", "ready", "active")
        if status is not None and not any(d["state"] in live for d in status["deployments"]):
            self.shutdown(ep)  # nothing left to serve: the host and its port go too

    def endpoints(self) -> list[EndpointRef]:
        """Every endpoint of this environment that was ever given a port here."""
        path = self._run_dir() / "ports.json"
        ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        pairs = [key.split("/", 1) for key in ports]
        return [EndpointRef(env, name) for env, name in pairs if env == self.env.name]

    def health(self, ep: EndpointRef) -> Health:
        status = self._call(ep, {"op": "status"})
        url = self.url(ep)
        if status is None:
            return Health(up=False, url=url, detail="no server process is running")
        active = [d for d in status["deployments"] if d["state"] == "active"]
        if not active:
            return Health(up=False, url=url, detail="the host runs but serves no deployment")
        dep = active[-1]
        pids = [w["pid"] for w in dep["workers"] if w["alive"]]
        try:
            ok = self._http.get(url.replace("/invocations", "/ping"), timeout=2).status_code == 200
        except httpx.HTTPError:
            ok = False
        restarts = sum(w["restarts"] for w in dep["workers"])
        detail = f"{len(pids)}/{len(dep['workers'])} processes up"
        if restarts:
            detail += f", {restarts} restart(s)"
        return Health(
            up=ok and bool(pids),
            url=url,
            deployment=dep["deployment"],
            model=dep["model"],
            version=dep["version"],
            detail=detail,
            processes=pids,
        )

    def shutdown(self, ep: EndpointRef) -> bool:
        """Stop the endpoint's host and all its servers; False when none was running."""
        return self._call(ep, {"op": "shutdown"}) is not None

    def close(self) -> None:
        self._http.close()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _who_holds(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""
