"""The warm model-server runtime as the bot sees it: one process per bot, started once and
shared by every local environment, that forks endpoint hosts on request (see zygote.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import TargetUnavailable
from core.targets.local.host import log_tail

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
        for it if needed. Never waits itself: while a start is being waited for (under the
        lock, for seconds), that start is the warm-up, and the caller goes on."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self.ready:
                return
            if self._launched is None:
                self._launched = self._launch()
        finally:
            self._lock.release()

        def warm() -> None:
            with contextlib.suppress(TargetUnavailable):  # told at the first spawn instead
                self._ensure()

        threading.Thread(target=warm, daemon=True, name="zygote-warmup").start()

    def wait_ready(self) -> bool:
        """Start it if needed and wait until it is warm; False when it could not start (the
        first spawn says why)."""
        try:
            self._ensure()
        except TargetUnavailable:
            return False
        return True

    def _launch(self) -> subprocess.Popen[str]:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # Its parent ends it (`close`), so a Ctrl-C to the bot's process group must not: one
        # arriving while it starts would stop its interpreter mid-import with a fatal error.
        # SIGINT is ignored from before its interpreter starts (the shell's trap; `exec`
        # keeps it), and what it forks inherits that.
        command = [self.python, "-m", "core.targets.local.zygote", str(self._log)]
        return subprocess.Popen(
            ["/bin/sh", "-c", 'trap "" INT; exec "$@"', "zygote", *command],
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
