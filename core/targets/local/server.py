"""One model-server worker: the MLflow scoring protocol over HTTP on loopback.

A worker is forked from a warm endpoint host, so loading a model costs tens of milliseconds.
It first serves only on a private port (health check and smoke test), starts taking the
endpoint's traffic on SIGUSR1, and on SIGTERM stops accepting, answers what it already holds
with `Connection: close` and exits. The endpoint's listening socket is shared by every worker
of every deployment, so traffic never meets a closed port during a switch.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any

KEEP_ALIVE_S = 5
DRAIN_LIMIT_S = 30


@dataclass(frozen=True)
class WorkerSpec:
    deployment: str
    model: str
    version: int
    model_path: str
    memory_mb: int


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = False  # joined on close: that is how in-flight requests finish
    allow_reuse_address = True

    def __init__(self, sock: socket.socket, app: _App) -> None:
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-request is not worth a traceback in the log.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _App:
    def __init__(self, spec: WorkerSpec, model: Any) -> None:
        self.spec = spec
        self.model = model
        self.schema = model.metadata.get_input_schema()
        self.draining = False

    def invoke(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        try:
            result = scoring_server.invocations(  # type: ignore[no-untyped-call]
                body, content_type, self.model, self.schema
            )
        except MlflowException as exc:
            error = {"error_code": exc.error_code, "message": exc.message}
            return 400, "application/json", json.dumps(error).encode()
        except Exception as exc:  # the model's own code failed: say so, keep serving
            error = {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}
            return 500, "application/json", json.dumps(error).encode()
        return result.status, result.mimetype, result.response.encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = KEEP_ALIVE_S
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the log tail people read on failure

    def do_GET(self) -> None:
        spec = self.server.app.spec
        if self.path in ("/ping", "/health"):
            self._send(200, "text/plain", b"\n")
        elif self.path == "/version":
            from mlflow.version import VERSION

            info = {"model": spec.model, "version": spec.version, "deployment": spec.deployment}
            self._send(200, "application/json", json.dumps({**info, "mlflow": VERSION}).encode())
        else:
            self._send(404, "text/plain", b"not found: try /ping, /version or POST /invocations\n")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._send(404, "text/plain", b"not found: POST /invocations\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type") or "application/json"
        self._send(*self.server.app.invoke(body, content_type))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        app = self.server.app
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Model", f"{app.spec.model}/{app.spec.version}")
        self.send_header("X-Deployment", app.spec.deployment)
        if app.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


def _die_with_parent() -> None:
    # A worker outliving its host would hold the endpoint's port with no one to stop it.
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


def _watch_memory(limit_mb: int) -> None:
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


def _serve(server: _Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return thread


def run_worker(spec: WorkerSpec, shared: socket.socket, ready_fd: int) -> None:
    """Load, verify, report ready on `ready_fd`, serve until SIGTERM. Never returns."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1})
    _die_with_parent()
    try:
        import mlflow.pyfunc

        started = time.perf_counter()
        model = mlflow.pyfunc.load_model(spec.model_path)
        app = _App(spec, model)
        example = os.path.join(spec.model_path, "serving_input_example.json")
        if os.path.exists(example):
            with open(example, "rb") as f:
                status, _, body = app.invoke(f.read(), "application/json")
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
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    private_sock = socket.create_server(("127.0.0.1", 0))
    private = _Server(private_sock, app)
    _serve(private)
    threading.Thread(target=_watch_memory, args=(spec.memory_mb,), daemon=True).start()
    ready = {"pid": os.getpid(), "private_port": private_sock.getsockname()[1]}
    os.write(ready_fd, (json.dumps(ready) + "\n").encode())
    os.close(ready_fd)
    public: _Server | None = None
    while True:
        sig = signal.sigwait({signal.SIGTERM, signal.SIGUSR1})
        if sig == signal.SIGUSR1 and public is None:
            public = _Server(shared, app)
            _serve(public)
        elif sig == signal.SIGTERM:
            break
    app.draining = True
    closing = [s for s in (public, private) if s is not None]
    for server in closing:
        server.shutdown()

    def close_all() -> None:
        for server in closing:
            server.server_close()  # joins the threads still answering requests

    closer = threading.Thread(target=close_all, daemon=True)
    closer.start()
    closer.join(DRAIN_LIMIT_S)
    print("stopped", flush=True)
    os._exit(0)
