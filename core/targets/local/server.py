"""One model-server worker: the MLflow scoring protocol over HTTP on loopback.

A worker is forked from a warm endpoint host, so loading a model costs tens of milliseconds.
It serves with one event loop (uvicorn's HTTP parser, scoring.py's application):
a request never waits for a thread. It first serves only on a private port (health check and
smoke test), starts taking the endpoint's traffic on SIGUSR1, and on SIGTERM stops accepting,
closes idle connections, answers what it already holds with `Connection: close` and exits.
The endpoint's listening socket is shared by every worker of every deployment, so traffic
never meets a closed port during a switch. From SIGUSR1 on, it counts each answer of the
scoring route in memory its host reads (traffic.py), and splits the scoring requests with a
candidate deployment when its host says so (split.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from core.targets.local.split import Splitter
from core.targets.local.traffic import Tally

KEEP_ALIVE_S = 5
DRAIN_LIMIT_S = 30
BACKLOG = 1024


@dataclass(frozen=True)
class WorkerSpec:
    deployment: str
    model: str
    version: int
    model_path: str
    memory_mb: int


def _die_with_parent() -> None:
    # A worker outliving its host would hold the endpoint's port with no one to stop it.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _rss_mb() -> float:
    try:  # read every quarter second: the cheapest source, where there is one
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        import psutil

        return float(psutil.Process().memory_info().rss) / (1024 * 1024)


def _enforce_memory_limit(limit_mb: int) -> None:
    while True:
        rss = _rss_mb()
        if rss > limit_mb:
            print(
                f"memory limit of {limit_mb} MB exceeded (resident {rss:.0f} MB): exiting",
                file=sys.stderr,
                flush=True,
            )
            os._exit(137)
        time.sleep(0.25)


def _load(spec: WorkerSpec) -> Any:
    """The scoring application of the model, verified on its own input example."""
    import mlflow.pyfunc

    from core.targets.local.scoring import Scorer, ScoringApp

    started = time.perf_counter()
    # the bot checked its requirements before starting it (MLflow's check is a second of reading)
    scorer = Scorer(mlflow.pyfunc.load_model(spec.model_path, suppress_warnings=True))
    example = os.path.join(spec.model_path, "serving_input_example.json")
    if os.path.exists(example):
        with open(example, "rb") as f:
            status, _, body = scorer.invoke(f.read(), "application/json")
        if status != 200:
            raise RuntimeError(f"the model failed on its own input example: {body.decode()}")
    rss = _rss_mb()
    if rss > spec.memory_mb:
        raise MemoryError(
            f"the loaded model needs {rss:.0f} MB, more than the {spec.memory_mb} MB limit"
        )
    print(
        f"loaded {spec.model} v{spec.version} in {time.perf_counter() - started:.3f}s, "
        f"resident {rss:.0f} MB",
        flush=True,
    )
    return ScoringApp(scorer, model=spec.model, version=spec.version, deployment=spec.deployment)


class _Worker:
    """The event loop's side: listeners, connections, and the drain."""

    def __init__(self, app: Any) -> None:
        import functools

        self.app = app
        import uvicorn
        from uvicorn.server import ServerState

        config = uvicorn.Config(
            app,
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=KEEP_ALIVE_S,
            backlog=BACKLOG,
        )
        config.load()
        self.state = ServerState()
        base: Any = config.http_protocol_class  # uvicorn's, whose constructor takes these

        class Protocol(base):  # type: ignore[misc]
            def connection_made(self, transport: Any) -> None:
                # headers and body leave in two writes: without this, the second waits for
                # the client's delayed ACK (40 ms a request on one connection)
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().connection_made(transport)

        self.protocol = functools.partial(
            Protocol, config=config, server_state=self.state, app_state={}
        )
        self.listeners: list[asyncio.AbstractServer] = []
        self.stop = asyncio.Event()

    async def listen(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self.listeners.append(await loop.create_server(self.protocol, sock=sock, backlog=BACKLOG))

    async def drain(self) -> None:
        # Closing our copy of the shared socket leaves it open in the host and the other
        # workers: the endpoint keeps accepting while this one finishes. A connection is
        # never closed under a client that may be sending on it: each one gets its next
        # answer with `Connection: close`, or ends at its keep-alive timeout.
        for listener in self.listeners:
            listener.close()
        self.app.draining = True
        deadline = time.monotonic() + DRAIN_LIMIT_S
        while (self.state.connections or self.state.tasks) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


async def _serve(
    app: Any, shared: socket.socket, ready_fd: int, memory_mb: int, tally: Tally
) -> None:
    worker = _Worker(app)
    loop = asyncio.get_running_loop()
    private_sock = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
    private_sock.setblocking(False)
    await worker.listen(private_sock)

    app.standby = tally  # a candidate counts the canary requests relayed to it
    activation: list[asyncio.Task[None]] = []

    def activate() -> None:
        if not activation:
            app.tally = tally
            activation.append(loop.create_task(worker.listen(shared)))

    loop.add_signal_handler(signal.SIGUSR1, activate)
    loop.add_signal_handler(signal.SIGTERM, worker.stop.set)
    # signals sent before the handlers existed were held; they are delivered now
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGUSR1})
    threading.Thread(target=_enforce_memory_limit, args=(memory_mb,), daemon=True).start()
    ready = {"pid": os.getpid(), "private_port": private_sock.getsockname()[1]}
    os.write(ready_fd, (json.dumps(ready) + "\n").encode())
    os.close(ready_fd)
    await worker.stop.wait()
    await worker.drain()


def run_worker(
    spec: WorkerSpec, shared: socket.socket, ready_fd: int, counts_fd: int, split_fd: int
) -> None:
    """Load, verify, report ready on `ready_fd`, serve until SIGTERM, counting what the
    endpoint's clients are answered in the memory of `counts_fd`, and splitting its requests
    with a candidate as the memory of `split_fd` says (split.py). Never returns."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1})
    _die_with_parent()
    try:
        app = _load(spec)
        tally = Tally(counts_fd)
        app.splitter = Splitter(split_fd, tally.cells)
        import gc

        # what the warm runtime and the model left is there for the worker's life: out of
        # the collector's sight, a collection under load walks only what requests make
        gc.freeze()
        # the standard loop, not uvloop: under many connections uvloop served some of them
        # seconds late while others went first; this one takes them in turn
        loop = asyncio.new_event_loop()
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    try:
        loop.run_until_complete(_serve(app, shared, ready_fd, spec.memory_mb, tally))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    print("stopped", flush=True)
    sys.stdout.flush()
    os._exit(0)
