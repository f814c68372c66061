"""The endpoint host: one long-lived process per local endpoint.

It owns the endpoint's listening socket (so the URL never changes), forks the workers of each
deployment from its already-warm interpreter, and answers a small JSON-lines control protocol
on a unix socket. It outlives the bot: a restarted bot finds it again through that socket.

Deployment states: starting -> ready -> active -> retiring -> stopped, or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.targets.local import split, traffic
from core.targets.local.envworker import exec_worker
from core.targets.local.server import WorkerSpec, run_worker

LOG_TAIL_LINES = 20
# ECMA-48 escape sequences (CSI, OSC, two-character ones) and the C0/C1 controls but tab
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
MAX_RESTARTS = 3


@dataclass
class Worker:
    pid: int
    ready_fd: int | None
    private_port: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    counts: traffic.Region | None = None  # what it answered, kept after it exits


@dataclass
class Deployment:
    spec: WorkerSpec
    workers_wanted: int
    log_path: Path
    state: str = "starting"
    error: str = ""
    workers: list[Worker] = field(default_factory=list)
    counted: list[Worker] = field(default_factory=list)  # every worker it had, for traffic
    # requests and errors of its workers whose counts were let go (long exited)
    answered_before: tuple[int, int] = (0, 0)
    started_at: float = field(default_factory=time.time)
    python: str = ""  # a model environment's interpreter its workers run in; "" for this one
    code: str = ""  # the PYTHONPATH that reaches our server code from that interpreter

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.spec.deployment,
            "model": self.spec.model,
            "version": self.spec.version,
            "memory_mb": self.spec.memory_mb,
            "state": self.state,
            "error": self.error,
            "log_tail": log_tail(self.log_path) if self.state == "failed" else "",
            "started_at": self.started_at,
            "workers": [
                {
                    "pid": w.pid,
                    "private_port": w.private_port,
                    "alive": w.exit_code is None,
                    "restarts": w.restarts,
                }
                for w in self.workers
            ],
        }


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` of a log as people read them: without the terminal's escape codes
    (colours, cursor moves) and other control characters libraries write."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(_CONTROL.sub("", _ESCAPE.sub("", line)) for line in text.splitlines()[-lines:])


@dataclass
class Split:
    """The endpoint's requests split with a candidate deployment (split.py)."""

    candidate: str
    canary: int
    shadow: int
    tolerance: float
    generation: int
    set_at: float = field(default_factory=time.monotonic)
    # what workers whose counts were let go had counted for it
    gone: split.Totals = field(default_factory=split.Totals)

    def key(self) -> tuple[str, int, int, float]:
        return self.candidate, self.canary, self.shadow, self.tolerance


class Host:
    def __init__(
        self, *, endpoint: str, listener: socket.socket, control: socket.socket, log_dir: Path
    ) -> None:
        self.endpoint = endpoint
        self.listener = listener
        self.control = control
        self.log_dir = log_dir
        self.deployments: dict[str, Deployment] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.stopping = False
        self.began = time.monotonic()  # traffic is counted from here on
        self.board = split.Board()  # the split every worker reads
        self.generation = 0
        self.split: Split | None = None
        self.ended: dict[str, dict[str, Any]] = {}  # candidate -> its last split, as it ended

    # -- workers ---------------------------------------------------------------------------
    def _fork_worker(self, dep: Deployment) -> Worker:
        read_fd, write_fd = os.pipe()
        counts = traffic.Region()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                self.control.close()
                log = os.open(dep.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                if dep.python:
                    exec_worker(
                        python=dep.python,
                        code=dep.code,
                        spec=dep.spec,
                        shared=self.listener,
                        ready_fd=write_fd,
                        counts_fd=counts.fd,
                        split_fd=self.board.fd,
                    )
                run_worker(dep.spec, self.listener, write_fd, counts.fd, self.board.fd)
            finally:
                os._exit(3)
        os.close(write_fd)
        counts.forked()
        worker = Worker(pid=pid, ready_fd=read_fd, counts=counts)
        dep.counted.append(worker)
        self.selector.register(read_fd, selectors.EVENT_READ, ("ready", dep, worker))
        return worker

    def _on_ready(self, dep: Deployment, worker: Worker) -> None:
        assert worker.ready_fd is not None
        data = os.read(worker.ready_fd, 4096)
        self.selector.unregister(worker.ready_fd)
        os.close(worker.ready_fd)
        worker.ready_fd = None
        if data:
            worker.private_port = json.loads(data)["private_port"]
        if dep.state == "starting" and all(w.private_port for w in dep.workers):
            dep.state = "ready"
        elif dep.state == "active" and worker.private_port:
            # a worker restarted in a serving deployment takes the endpoint's traffic again
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGUSR1)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for dep in self.deployments.values():
                for worker in dep.workers:
                    if worker.pid == pid:
                        worker.exit_code = os.waitstatus_to_exitcode(status)
                        self._on_exit(dep, worker)

    def _on_exit(self, dep: Deployment, worker: Worker) -> None:
        if worker.ready_fd is not None:
            self.selector.unregister(worker.ready_fd)
            os.close(worker.ready_fd)
            worker.ready_fd = None
        if dep.state == "starting":
            dep.state = "failed"
            last = log_tail(dep.log_path, 1).strip()
            dep.error = f"a model server exited while starting (exit code {worker.exit_code})"
            if last:
                dep.error += f": {last}"
            for other in dep.workers:
                if other.exit_code is None:
                    os.kill(other.pid, signal.SIGTERM)
        elif dep.state == "active" and worker.restarts < MAX_RESTARTS:
            replacement = self._fork_worker(dep)
            replacement.restarts = worker.restarts + 1
            dep.workers[dep.workers.index(worker)] = replacement
        elif dep.state == "retiring" and all(w.exit_code is not None for w in dep.workers):
            dep.state = "stopped"

    # -- control protocol ------------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {
                "ok": True,
                "endpoint": self.endpoint,
                "pid": os.getpid(),
                "port": self.listener.getsockname()[1],
                "deployments": [d.as_dict() for d in self.deployments.values()],
            }
        if op == "traffic":
            return {"ok": True, **self._traffic(float(request.get("window_s", 300)))}
        if op == "start":
            spec = WorkerSpec(**request["spec"])
            if spec.deployment in self.deployments:
                return {"ok": True, "deployment": self.deployments[spec.deployment].as_dict()}
            dep = Deployment(
                spec=spec,
                workers_wanted=int(request["workers"]),
                log_path=self.log_dir / f"{spec.deployment}.log",
                python=str(request.get("python") or ""),
                code=str(request.get("code") or ""),
            )
            self.deployments[spec.deployment] = dep
            dep.workers = [self._fork_worker(dep) for _ in range(dep.workers_wanted)]
            return {"ok": True, "deployment": dep.as_dict()}
        if op == "split":
            return self._set_split(request)
        if op == "compare":
            return {"ok": True, **self._compare(str(request.get("candidate")))}
        if op in ("activate", "retire"):
            target = self.deployments.get(str(request.get("deployment")))
            if target is None:
                return {"ok": False, "error": f"no deployment {request.get('deployment')}"}
            if op == "retire":
                if self.split is not None and self.split.candidate == target.spec.deployment:
                    self._end_split()
                self._retire(target)
                return {"ok": True}
            if target.state not in ("ready", "active"):
                return {"ok": False, "error": f"deployment is {target.state}, not ready"}
            self._end_split()  # a switch: the deployment activated serves everything
            try:
                # the port takes connections only from the first activation on: until some
                # deployment serves, a client is refused at once instead of left hanging
                self.listener.listen(1024)
            except OSError as exc:
                return {"ok": False, "error": f"could not listen: {exc.strerror}"}
            self._signal(target, signal.SIGUSR1)
            target.state = "active"
            return {"ok": True}
        if op == "shutdown":
            self._end_split()
            for d in self.deployments.values():
                self._retire(d)
            # refuse new connections now, while the workers finish what they hold: the
            # endpoint is stopped when this returns, not when the last request drains
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.stopping = True
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    # -- the split with a candidate -----------------------------------------------------------
    def _set_split(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("candidate"))
        canary, shadow = int(request.get("canary", 0)), int(request.get("shadow", 0))
        tolerance = float(request.get("tolerance", 0.0))
        if not (0 <= canary <= 100 and 0 <= shadow <= 100):
            return {"ok": False, "error": "canary and shadow are percents, 0 to 100"}
        if not 0 <= tolerance < float("inf"):
            return {"ok": False, "error": "the tolerance is a number, 0 or more"}
        candidate = self.deployments.get(name)
        if candidate is None:
            return {"ok": False, "error": f"no deployment {name}"}
        if candidate.state != "ready":
            return {"ok": False, "error": f"deployment {name} is {candidate.state}, not ready"}
        if self._serving() is None:
            return {"ok": False, "error": "no deployment serves the endpoint"}
        wanted = (name, canary, shadow, tolerance)
        if self.split is not None and self.split.key() == wanted:
            return {"ok": True, "generation": self.split.generation, "changed": False}
        self._end_split()
        ports = [
            w.private_port for w in candidate.workers if w.private_port and w.exit_code is None
        ]
        self.generation += 1
        self.split = Split(name, canary, shadow, tolerance, self.generation)
        self.board.set(
            self.generation, canary=canary, shadow=shadow, tolerance=tolerance, ports=ports
        )
        return {"ok": True, "generation": self.generation, "changed": True}

    def _serving(self) -> Deployment | None:
        active = [d for d in self.deployments.values() if d.state == "active"]
        return active[-1] if active else None

    def _end_split(self) -> None:
        """Gives every request back to what serves; what the split counted stays readable."""
        if self.split is None:
            return
        self.ended = {self.split.candidate: {**self._compare(self.split.candidate), "ended": True}}
        self.board.clear()
        self.split = None

    def _compare(self, candidate: str) -> dict[str, Any]:
        """What the serving deployment and `candidate` answered since the split was set."""
        current = self.split
        if current is None or current.candidate != candidate:
            return self.ended.get(candidate) or {"split": None}
        totals = split.Totals()
        totals.merge(current.gone)
        for dep in self.deployments.values():
            for worker in dep.counted:
                if worker.counts is not None:
                    totals.add(worker.counts.cells, current.generation)
        serving = self._serving()
        cand = self.deployments.get(candidate)
        found = totals.as_dict()
        if serving is not None:
            found["serving"].update(
                deployment=serving.spec.deployment, version=serving.spec.version
            )
        if cand is not None:
            found["candidate"].update(deployment=candidate, version=cand.spec.version)
        return {
            "split": {
                "candidate": candidate,
                "canary": current.canary,
                "shadow": current.shadow,
                "tolerance": current.tolerance,
                "since_s": time.monotonic() - current.set_at,
            },
            **found,
        }

    def _traffic(self, window_s: float) -> dict[str, Any]:
        """What every worker answered over the window, per version; the counts of workers
        gone for longer than any window are let go."""
        now = time.monotonic()
        regions = []
        answered: dict[str, dict[str, int]] = {}
        for name, dep in self.deployments.items():
            requests, errors = dep.answered_before
            for worker in list(dep.counted):
                if worker.counts is None:
                    continue
                if worker.exit_code is not None and traffic.stale(worker.counts, now):
                    gone = worker.counts.totals()
                    dep.answered_before = (
                        dep.answered_before[0] + gone[0],
                        dep.answered_before[1] + gone[1],
                    )
                    if self.split is not None:  # what it counted for the split stays
                        self.split.gone.add(worker.counts.cells, self.split.generation)
                    worker.counts.close()
                    dep.counted.remove(worker)
                    continue
                regions.append((dep.spec.version, worker.counts))
                total = worker.counts.totals()
                requests, errors = requests + total[0], errors + total[1]
            answered[name] = {"version": dep.spec.version, "requests": requests, "errors": errors}
        found = traffic.gather(regions, now, window_s)
        return {
            "window_s": min(window_s, traffic.LONGEST_S),
            "span_s": min(window_s, now - self.began),
            "versions": {str(v): counts.as_dict() for v, counts in found.items()},
            # since each deployment took the endpoint's traffic, whatever the window
            "deployments": answered,
        }

    def _retire(self, dep: Deployment) -> None:
        if dep.state in ("stopped", "failed"):
            return
        dep.state = "retiring"
        self._signal(dep, signal.SIGTERM)
        if all(w.exit_code is not None for w in dep.workers):
            dep.state = "stopped"

    @staticmethod
    def _signal(dep: Deployment, sig: int) -> None:
        for worker in dep.workers:
            if worker.exit_code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, sig)

    def _serve_control(self) -> None:
        conn, _ = self.control.accept()
        with conn:
            conn.settimeout(5)
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            try:
                reply = self.handle(json.loads(buf))
            except Exception as exc:  # a bad request must not take the endpoint down
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            conn.sendall((json.dumps(reply) + "\n").encode())

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select(timeout=0.05):
                if key.data == "control":
                    self._serve_control()
                else:
                    _, dep, worker = key.data
                    self._on_ready(dep, worker)
            self._reap()
            busy = any(w.exit_code is None for d in self.deployments.values() for w in d.workers)
            if self.stopping and not busy:
                return


def host_main(*, endpoint: str, port: int, control_path: str, log_dir: str, report_fd: int) -> None:
    """Run in a fresh session (forked by the zygote): bind, report, serve. Never returns."""
    logs = Path(log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    log = os.open(logs / "host.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))  # it listens once a deployment serves
        listener.setblocking(False)  # several processes accept on it: none may block
    except OSError as exc:
        os.write(report_fd, (json.dumps({"ok": False, "error": exc.strerror}) + "\n").encode())
        os._exit(1)
    if os.path.exists(control_path):
        os.unlink(control_path)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(control_path)
    control.listen(16)
    os.write(report_fd, (json.dumps({"ok": True, "pid": os.getpid()}) + "\n").encode())
    os.close(report_fd)
    print(f"host of {endpoint} on 127.0.0.1:{port}, control {control_path}", flush=True)
    try:
        Host(endpoint=endpoint, listener=listener, control=control, log_dir=logs).run()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(control_path)
        sys.stdout.flush()
        os._exit(0)
