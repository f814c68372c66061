"""A real `mlflow server` for tests: over its own SQLite store, on loopback, as a team would
run it. Tests that need what only the tracking server does (REST, webhooks, a remote registry
that refuses) start one; the rest use the SQLite registry of `tests.conftest`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MLFLOW = Path(sys.executable).with_name("mlflow")
START_S = 180.0


class MlflowServer:
    """`mlflow server --backend-store-uri sqlite:///<root>/m.db`, artifacts under
    `<root>/artifacts`; `env` adds to the server's environment (webhook settings, say)."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = env or {}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.uri = f"http://127.0.0.1:{self.port}"
        self.store = f"sqlite:///{root / 'm.db'}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        args = ["server", "--backend-store-uri", self.store]
        args += ["--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"]
        log = open(self.root / "server.log", "w")  # noqa: SIM115 (the server's whole life)
        self.proc = subprocess.Popen(
            [str(MLFLOW), *args, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.root,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # its workers stop with it
        )
        deadline = time.monotonic() + START_S
        while True:
            try:
                if httpx.get(f"{self.uri}/health", timeout=2).is_success:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(
                    "mlflow server exited: " + (self.root / "server.log").read_text()[-2000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start within {START_S:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
