"""The local target: endpoints served by model-server processes on 127.0.0.1.

Mapping of resources: each replica runs ceil(cpu) worker processes, every worker holds at most
`memory` resident (it exits when it goes over, and its host starts a new one), and all workers
of an endpoint accept on the endpoint's one port. Each endpoint of each environment has its
own host, control socket, port and files (layout.py).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from core.config import Environment
from core.errors import BuildFailed, ChatOpsError, DeployFailed, StepTimeout, TargetUnavailable
from core.resources import Resources
from core.targets.base import (
    Built,
    Comparison,
    EndpointRef,
    Health,
    ModelSource,
    SmokeTested,
    Started,
    Step,
    Traffic,
    quiet_step,
)
from core.targets.local import messages, requirements, split, traffic
from core.targets.local.control import accepts, bindable, call, who_holds
from core.targets.local.host import log_tail
from core.targets.local.layout import Layout, PortBook
from core.targets.local.server import DRAIN_LIMIT_S
from core.targets.local.spawner import Zygote
from core.targets.local.uvenv import ModelEnv, UvEnvs

if TYPE_CHECKING:
    from core.versions import ModelVersion

__all__ = ["LocalTarget", "Zygote"]

# a retired worker finishes what it holds within DRAIN_LIMIT_S, then exits whatever happens
STOP_WAIT_S = DRAIN_LIMIT_S + 10.0


class LocalTarget:
    kind = "local"

    def __init__(
        self, *, env: Environment, state_dir: Path, zygote: Zygote, start_timeout_s: float = 60.0
    ) -> None:
        self.env = env
        self.state_dir = state_dir
        self.zygote = zygote
        self.start_timeout_s = start_timeout_s
        self.layout = Layout(state_dir)
        self.ports = PortBook(self.layout)
        self.envs = UvEnvs(
            root=self.layout.root / "uvenvs",
            base_python=zygote.python,
            timeout_s=env.build_timeout_s,
        )
        # no keep-alive: an idle connection would hold a retiring worker for its drain time;
        # plain HTTP on loopback only, so no TLS context (loading the CA bundle takes 0.3 s)
        self._http = httpx.Client(
            timeout=10,
            limits=httpx.Limits(max_keepalive_connections=0),
            verify=False,
            trust_env=False,
        )

    # -- where things live -----------------------------------------------------------------
    def port(self, ep: EndpointRef) -> int:
        """The endpoint's port: kept for its life, so its URL never changes."""
        low, high = self.env.port_range
        port = self.ports.assign(ep, range(low, high + 1), bindable)
        if port is None:
            raise DeployFailed(f"no free port left in {low}-{high} for environment {ep.env}")
        return port

    def url(self, ep: EndpointRef) -> str:
        return f"http://127.0.0.1:{self.port(ep)}/invocations"

    def _control(self, ep: EndpointRef) -> str:
        """The host's control socket: its own, or the one an endpoint host started before
        the per-environment layout still listens on, once that host proved it is this
        endpoint's (its name and port), so an upgraded bot adopts what serves."""
        entry = self.ports.find(ep)
        if entry is not None and entry.legacy:
            legacy = self.layout.legacy_control_path(ep)
            status = call(legacy, {"op": "status"}, what=ep.name)
            if status is not None and (status.get("endpoint"), status.get("port")) == (
                ep.name,
                entry.port,
            ):
                return legacy
            self.ports.settle(ep)
        return self.layout.control_path(ep)

    # -- talking to the endpoint host ------------------------------------------------------
    def _call(self, ep: EndpointRef, request: dict[str, Any]) -> dict[str, Any] | None:
        """The host's reply, or None when no host runs for this endpoint."""
        return call(self._control(ep), request, what=ep.name)

    def _status(self, ep: EndpointRef) -> dict[str, Any] | None:
        return self._call(ep, {"op": "status"})

    def _ensure_host(self, ep: EndpointRef, step: Step) -> dict[str, Any]:
        status = self._status(ep)
        if status is not None:
            return status
        port = self.port(ep)
        if not self.zygote.ready:
            step.say("waiting for the model-server runtime to warm up (once per bot start)")
        step.say(f"opening 127.0.0.1:{port} for {ep.name}")
        log_dir = self.layout.log_dir(ep)
        reply = self.zygote.spawn_host(
            {
                "endpoint": ep.name,
                "port": port,
                "control": self.layout.control_path(ep),
                "log_dir": str(log_dir),
            }
        )
        if not reply.get("ok"):
            raise DeployFailed(
                f"could not listen on 127.0.0.1:{port}: {reply.get('error')}"
                f"{who_holds(port)} — free the port and run the command again"
            )
        status = self._status(ep)
        if status is None:
            raise DeployFailed(
                f"the server host of {ep.name} exited right after it started",
                log_tail=log_tail(log_dir / "host.log"),
            )
        return status

    def _deployment(self, ep: EndpointRef, deployment: str) -> dict[str, Any] | None:
        status = self._status(ep)
        if status is None:
            return None
        return next((d for d in status["deployments"] if d["deployment"] == deployment), None)

    # -- the Target interface --------------------------------------------------------------
    def build(self, ep: EndpointRef, mv: ModelVersion, source: ModelSource, step: Step) -> Built:
        """The version's artifacts, checked against what will serve them: its requirements
        met by the bot's runtime (or, with `env_manager` "uv", by its own environment, built
        now unless cached) and its code shipped with it. `BuildFailed` before anything runs."""
        path = source.download(mv, self.layout.artifacts(ep, mv.model, mv.version))
        mlmodel = (path / "MLmodel").read_text()
        if "python_function" not in mlmodel:
            raise BuildFailed(
                f"{mv.label} has no python_function flavor, so it cannot be served",
                log_tail=mlmodel[-2000:],
            )
        example_path = path / "serving_input_example.json"
        example = json.loads(example_path.read_text()) if example_path.exists() else None
        detail = "artifacts fetched and verified" + ("" if example else " (no input example)")
        reqs = requirements.read(path)
        if reqs.other_python:
            detail += f"; {messages.other_python(reqs.other_python)}"
        unmet = requirements.unmet(reqs)
        if unmet and self.env.env_manager != "uv":
            raise BuildFailed(messages.unmet(mv.label, unmet, self.env.name, reqs.source))
        if unmet:
            model_env = self.envs.ensure(reqs, step)
            detail += f"; served from its own environment {model_env.short}"
            return Built(ref=str(path), example=example, detail=detail)
        modules = requirements.missing_modules(path)
        if modules:
            raise BuildFailed(messages.missing_modules(mv.label, modules))
        return Built(ref=str(path), example=example, detail=detail)

    def built(self, ep: EndpointRef, mv: ModelVersion) -> str | None:
        """The artifacts `build` fetched for this endpoint before (and the environment it
        made them, with `env_manager` "uv"); None when they would be fetched."""
        path = self.layout.artifacts(ep, mv.model, mv.version)
        if not (path / "MLmodel").exists():
            return None
        found = f"the artifacts of {mv.label} fetched before for {ep.name}"
        if self.env.env_manager == "uv":
            reqs = requirements.read(path)
            if requirements.unmet(reqs):
                model_env = self.envs.find(reqs)
                found += (
                    f", and its own environment {model_env.short}"
                    if model_env
                    else "; its own environment would be built"
                )
        return found

    def _model_env(self, mv: ModelVersion, model_path: Path) -> ModelEnv | None:
        """The environment a built version's servers run in: None for the warm runtime."""
        if self.env.env_manager != "uv":
            return None
        reqs = requirements.read(model_path)
        if not requirements.unmet(reqs):
            return None
        found = self.envs.find(reqs)
        if found is None:
            raise DeployFailed(messages.env_gone(mv.label))
        return found

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
        model_env = self._model_env(mv, Path(built.ref))
        self._ensure_host(ep, step)
        workers = resources.replicas * max(1, math.ceil(resources.cpu))
        spec = {
            "deployment": deployment,
            "model": mv.model,
            "version": mv.version,
            "model_path": built.ref,
            "memory_mb": resources.memory_mb,
        }
        step.say(f"starting {workers} model server process{'es' if workers > 1 else ''}")
        request: dict[str, Any] = {"op": "start", "spec": spec, "workers": workers}
        if model_env is not None:  # started from the model's own interpreter, not forked
            request.update(python=model_env.python, code=model_env.code)
        reply = self._call(ep, request)
        if reply is None or not reply.get("ok"):
            self.discard(ep, deployment, step)
            raise DeployFailed(f"the server host of {ep.name} refused the deployment: {reply}")
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            dep = self._deployment(ep, deployment)
            if dep is None:
                self.discard(ep, deployment, step)
                raise DeployFailed(f"the server host of {ep.name} stopped during the start")
            if dep["state"] in ("ready", "active"):
                ports = ", ".join(str(w["private_port"]) for w in dep["workers"])
                return Started(
                    deployment=deployment,
                    url=self.url(ep),
                    detail=f"{workers} process(es), private ports {ports}",
                )
            if dep["state"] == "failed":
                self.discard(ep, deployment, step)
                hint = messages.module_hint(f"{dep['error']}\n{dep['log_tail']}")
                raise DeployFailed(
                    f"{mv.label} failed to start: {dep['error']}{hint}", log_tail=dep["log_tail"]
                )
            time.sleep(0.01)
        self.discard(ep, deployment, step)
        raise StepTimeout(
            f"{mv.label} was not ready after {self.start_timeout_s:.0f}s",
            log_tail=log_tail(self.layout.log_dir(ep) / f"{deployment}.log"),
        )

    def smoke_test(
        self, ep: EndpointRef, started: Started, built: Built, step: Step
    ) -> SmokeTested:
        dep = self._deployment(ep, started.deployment)
        if dep is None:
            raise DeployFailed(f"deployment {started.deployment} is gone")
        ports = [w["private_port"] for w in dep["workers"]]
        try:
            for port in ports:
                self._http.get(f"http://127.0.0.1:{port}/ping").raise_for_status()
            if built.example is None:
                return SmokeTested(latency_ms=0.0, prediction=None)
            begun = time.perf_counter()
            response = self._http.post(
                f"http://127.0.0.1:{ports[0]}/invocations", json=built.example
            )
            latency = (time.perf_counter() - begun) * 1000
        except httpx.HTTPError as exc:
            raise DeployFailed(
                f"the new model server did not answer: {exc}",
                log_tail=log_tail(self.layout.log_dir(ep) / f"{started.deployment}.log"),
            ) from None
        if response.status_code != 200:
            hint = messages.module_hint(response.text)
            raise DeployFailed(
                f"smoke test failed with HTTP {response.status_code}: {response.text[:500]}{hint}"
            )
        return SmokeTested(latency_ms=latency, prediction=response.json().get("predictions"))

    def score(
        self, ep: EndpointRef, body: dict[str, Any], started: Started | None = None
    ) -> Any | None:
        """What serves is asked through the endpoint, marked as the bot's own: its traffic
        counts only what its callers asked, and no split sends it to a candidate. A new
        deployment is asked on its private port, as its smoke test is."""
        try:
            url, headers = self.url(ep), {split.PROBE_HEADER.decode(): "1"}
            if started is not None:
                dep = self._deployment(ep, started.deployment)
                if dep is None or not dep["workers"]:
                    return None
                port = dep["workers"][0]["private_port"]
                url, headers = f"http://127.0.0.1:{port}/invocations", {}
            response = self._http.post(url, json=body, headers=headers)
            if response.status_code != 200:
                return None
            return response.json().get("predictions")
        except Exception:  # an answer or none: what the diff is told, never a failed rollout
            return None

    def switch(self, ep: EndpointRef, new: str, step: Step) -> str:
        """`new` takes the traffic; every other deployment taking it (whatever the caller
        remembers) is retired, and is gone when this returns. One started beside it by
        another rollout and not yet switched in is left to that rollout."""
        reply = self._call(ep, {"op": "activate", "deployment": new})
        if reply is None or not reply.get("ok"):
            raise DeployFailed(f"could not route traffic to the new deployment: {reply}")
        status = self._status(ep)
        others = [
            d["deployment"]
            for d in (status or {}).get("deployments", [])
            if d["deployment"] != new and d["state"] in ("active", "retiring")
        ]
        for other in others:
            self._call(ep, {"op": "retire", "deployment": other})
        if others and not self._wait(lambda: self._retired(ep, others)):
            step.say(f"the previous deployment(s) {', '.join(others)} are still draining")
        return self.url(ep)

    def _retired(self, ep: EndpointRef, deployments: list[str]) -> bool:
        status = self._status(ep)
        if status is None:
            return True
        states = {d["deployment"]: d["state"] for d in status["deployments"]}
        return all(states.get(d) in (None, "stopped", "failed") for d in deployments)

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        """Stop a deployment that never took traffic; when nothing else of the endpoint
        serves, its host goes too, so nothing is left listening on its port."""
        self._call(ep, {"op": "retire", "deployment": deployment})
        status = self._status(ep)
        if status is None or not any(d["state"] == "active" for d in status["deployments"]):
            self.stop(ep, step)

    def stop(self, ep: EndpointRef, step: Step) -> None:
        """Stop every deployment and process of the endpoint; returns once its port refuses
        connections, raises TargetUnavailable when something of it still listens."""
        entry = self.ports.find(ep)
        if entry is None:
            return  # never given a port here: nothing of it can run
        controls = {self._control(ep), self.layout.control_path(ep)}
        ran = [path for path in controls if call(path, {"op": "shutdown"}, what=ep.name)]
        if ran:
            step.say(f"stopping the model servers of {ep.name}")

        def gone() -> bool:
            hosts = any(call(path, {"op": "status"}, what=ep.name) for path in controls)
            return not hosts and not (ran and accepts(entry.port))

        if not self._wait(gone):
            raise TargetUnavailable(
                f"{ep.name} still listens on 127.0.0.1:{entry.port}{who_holds(entry.port)} "
                f"{STOP_WAIT_S:.0f}s after it was told to stop"
            )
        self.ports.settle(ep)

    @staticmethod
    def _wait(condition: Any, timeout: float = STOP_WAIT_S) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def endpoints(self) -> list[EndpointRef]:
        """The endpoints of this environment whose host runs here (adopting hosts started
        before the per-environment layout)."""
        refs = [EndpointRef(e.env, e.name) for e in self.ports.entries() if e.env == self.env.name]
        return [ref for ref in refs if self._status(ref) is not None]

    def health(self, ep: EndpointRef) -> Health:
        """What serves `ep` here now. Only looks: an endpoint without a port here (recorded
        by a bot with another state directory, or a port range narrowed since) is told as
        not running, never given a port, and never stops the others from being told."""
        status = self._status(ep)
        entry = self.ports.find(ep)
        url = f"http://127.0.0.1:{entry.port}/invocations" if entry is not None else ""
        if status is None or entry is None:
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
        largest = _largest_resident_mb(pids)
        if largest is not None:  # what each process's watchdog holds to the memory limit
            detail += f", at most {largest:.0f} MB resident per process"
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
        """`stop`, for callers that still ask whether anything ran; False when nothing did."""
        ran = self._status(ep) is not None
        self.stop(ep, quiet_step())
        return ran

    def traffic(self, ep: EndpointRef, window_s: float = 300.0) -> Traffic:
        """Requests, 5xx errors and latency of every worker of the endpoint (retired ones
        too, so a rollout's both versions show), added up by its host."""
        try:
            reply = self._call(ep, {"op": "traffic", "window_s": window_s})
            return traffic.summary(reply, window_s)
        except ChatOpsError as exc:
            return Traffic(window_s=window_s, detail=messages.traffic_unreadable(exc.message))
        except (ValueError, KeyError, TypeError) as exc:  # an answer not as this bot expects
            return Traffic(window_s=window_s, detail=messages.traffic_unreadable(repr(exc)))

    def split(
        self,
        ep: EndpointRef,
        candidate: str,
        *,
        canary: int,
        shadow: int,
        tolerance: float,
        step: Step,
    ) -> None:
        """The serving deployment's workers send `canary` percent of the requests they take
        to `candidate`'s workers and copy `shadow` percent of the others to them (split.py).
        A canary request the candidate fails (5xx, refused, no answer in time) is answered
        by the serving version instead, and counted as the candidate's error."""
        whole = all(isinstance(n, int) and not isinstance(n, bool) for n in (canary, shadow))
        if not (
            whole
            and 0 <= canary <= 100
            and 0 <= shadow <= 100
            and isinstance(tolerance, int | float)
            and 0 <= tolerance < math.inf
        ):
            raise DeployFailed(messages.split_bad(canary, shadow, tolerance))
        request = {
            "op": "split",
            "candidate": candidate,
            "canary": canary,
            "shadow": shadow,
            "tolerance": float(tolerance),
        }
        reply = self._call(ep, request)
        if reply is None:
            raise TargetUnavailable(messages.split_refused(ep.name, messages.SPLIT_NO_HOST))
        if not reply.get("ok"):
            error = str(reply.get("error"))
            if "unknown op" in error:
                raise DeployFailed(messages.split_refused(ep.name, messages.SPLIT_OLD_HOST))
            raise DeployFailed(messages.split_refused(ep.name, error))
        if reply.get("changed"):
            step.say(messages.split_set(ep.name, candidate, canary, shadow))

    def compare(self, ep: EndpointRef, candidate: str) -> Comparison:
        """What the serving version and `candidate` answered since the split was set, as the
        endpoint's host adds up its workers' counts; after a switch or discard ended the
        split, what it had counted until then. Percentiles are over all of that time."""
        try:
            reply = self._call(ep, {"op": "compare", "candidate": candidate})
            return split.summary(reply, candidate)
        except ChatOpsError as exc:
            return Comparison(known=False, detail=messages.split_unreadable(exc.message))
        except (ValueError, KeyError, TypeError) as exc:  # an answer not as this bot expects
            return Comparison(known=False, detail=messages.split_unreadable(repr(exc)))

    def close(self) -> None:
        self._http.close()


def _largest_resident_mb(pids: list[int]) -> float | None:
    """The resident memory of the largest of the model-server processes `pids` (each is held
    to the endpoint's memory limit by its own watchdog; forked from one runtime, they share
    pages, so a sum would overstate them); None when none can be read."""
    import psutil

    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid).memory_info().rss / 2**20)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return max(found) if found else None
