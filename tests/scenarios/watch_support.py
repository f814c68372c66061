"""What the watch tests share: model servers that die for good."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from core.runtime import Runtime
from core.targets.base import EndpointRef
from core.targets.local.host import MAX_RESTARTS

IRIS = EndpointRef("dev", "iris")


def kill_serving(runtime: Runtime, version: int) -> None:
    """SIGKILL the model servers of `version` until their host gives up restarting them."""
    target = runtime.targets["dev"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = target._call(IRIS, {"op": "status"})  # type: ignore[attr-defined]
        (dep,) = [
            d for d in status["deployments"] if d["version"] == version and d["state"] == "active"
        ]
        alive = [w["pid"] for w in dep["workers"] if w["alive"]]
        if not alive and all(w["restarts"] >= MAX_RESTARTS for w in dep["workers"]):
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):  # it died since the status
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    raise AssertionError("the model servers kept coming back")
