"""Serving the emulator: in a background thread for tests, or in the foreground from the CLI
(``chatops cml-emulator --port N`` calls ``main``)."""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import uvicorn

from emulators.cml.app import build_app
from emulators.cml.emulator import CMLEmulator
from emulators.cml.switches import Faults, Timings


class RunningEmulator:
    """A started emulator: ``url`` is its base URL (API at ``url + "/api/v2"``, model service at
    ``model_url``); ``faults``, ``timings`` and ``workspace`` are the live objects."""

    def __init__(self, emulator: CMLEmulator, server: uvicorn.Server, sock: socket.socket) -> None:
        self.emulator = emulator
        host, port = sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"
        self.model_url = self.url + "/model"
        self._server = server
        self._socket = sock
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="cml-emulator", daemon=True
        )

    @property
    def api_key(self) -> str:
        return self.emulator.api_key

    @property
    def faults(self) -> Faults:
        return self.emulator.faults

    @property
    def timings(self) -> Timings:
        return self.emulator.timings

    def start(self, ready_timeout: float = 15.0) -> RunningEmulator:
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the CML emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self.emulator.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    emulator: CMLEmulator, *, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Serves ``emulator`` on ``host:port`` (0: a free port) in a daemon thread; returns once
    it accepts connections. Stop it with ``.stop()`` or a ``with`` block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # asyncio only disables Nagle for sockets whose proto is IPPROTO_TCP, not 0 as here;
    # accepted sockets inherit this instead. Without it every keep-alive answer waits out
    # the client's delayed ACK (~40 ms), as uvicorn writes headers and body separately.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        build_app(emulator), log_level="warning", access_log=False, lifespan="off"
    )
    return RunningEmulator(emulator, uvicorn.Server(config), sock).start()


def start_emulator(
    *,
    tracking_uri: str,
    api_key: str,
    projects: Iterable[str | Mapping[str, Any]] = ("default",),
    timings: Timings | None = None,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningEmulator:
    """A new emulator over the MLflow at ``tracking_uri``, served in a background thread."""
    emulator = CMLEmulator(
        tracking_uri=tracking_uri,
        api_key=api_key,
        projects=projects,
        timings=timings,
        faults=faults,
    )
    return serve_in_thread(emulator, host=host, port=port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatops cml-emulator",
        description="Serve a CML API v2 emulator whose model registry is an MLflow tracking URI.",
        epilog="Example: chatops cml-emulator --port 8090 --project demo --fast",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        help="MLflow tracking and registry URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)",
    )
    parser.add_argument(
        "--project",
        action="append",
        metavar="NAME[=ID]",
        help="a project to seed; repeat for more (default: one named 'default')",
    )
    parser.add_argument(
        "--fast", action="store_true", help="tiny stage timings (as in tests) instead of realistic"
    )
    args = parser.parse_args(argv)
    api_key = os.environ.get("CML_EMULATOR_API_KEY", "emulator")
    projects = [_project_seed(text) for text in args.project or ["default"]]
    emulator = CMLEmulator(
        tracking_uri=args.tracking_uri,
        api_key=api_key,
        projects=projects,
        timings=Timings() if args.fast else Timings.realistic(),
    )
    print(
        f"CML emulator on http://{args.host}:{args.port} "
        f"(API key from $CML_EMULATOR_API_KEY, else 'emulator'; registry {args.tracking_uri})",
        flush=True,
    )
    for project in emulator.workspace.projects.values():
        print(f"  project {project['name']}: {project['id']}", flush=True)
    try:
        uvicorn.run(build_app(emulator), host=args.host, port=args.port, log_level="info")
    finally:
        emulator.close()
    return 0


def _project_seed(text: str) -> dict[str, str]:
    name, _, project_id = text.partition("=")
    return {"name": name, "id": project_id} if project_id else {"name": name}
