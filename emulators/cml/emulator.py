"""The emulator object: one workspace, its API key, timings and fault switches."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emulators.cml.errors import ApiError
from emulators.cml.lifecycle import Lifecycle
from emulators.cml.registry import MlflowRegistry
from emulators.cml.switches import Faults, Timings
from emulators.cml.workspace import DEFAULT_RUNTIMES, Workspace


class CMLEmulator:
    """A CML workspace in memory whose registry is the MLflow at ``tracking_uri``.

    Tests turn ``faults`` and ``timings`` directly; a running server also exposes them under
    ``/_emulator/``. ``projects`` seeds the workspace: names, or mappings with ``name`` and
    optionally ``id`` and ``description``.
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        api_key: str,
        projects: Iterable[str | Mapping[str, Any]] = ("default",),
        runtimes: Iterable[Mapping[str, Any]] = DEFAULT_RUNTIMES,
        timings: Timings | None = None,
        faults: Faults | None = None,
        username: str = "emulator",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.timings = timings or Timings()
        self.faults = faults or Faults()
        self.user = {
            "username": username,
            "name": username.title(),
            "email": f"{username}@example.com",
        }
        self.registry = MlflowRegistry(
            tracking_uri=tracking_uri, owner=self.user, timings=self.timings, clock=clock
        )
        self.lifecycle = Lifecycle(
            registry=self.registry, timings=self.timings, faults=self.faults, clock=clock
        )
        self.workspace = Workspace(
            registry=self.registry,
            lifecycle=self.lifecycle,
            user=self.user,
            projects=projects,
            runtimes=runtimes,
            clock=clock,
        )

    def close(self) -> None:
        self.lifecycle.close()

    def admit(self, authorization: str | None, operation: str = "") -> None:
        """What every API v2 call (of ``operation``, its operationId) goes through: latency,
        injected failures, then the key."""
        if self.faults.latency > 0:
            time.sleep(self.faults.latency)
        status = self.faults.failure_for_next_call(operation)
        if status is not None:
            raise ApiError(
                status, f"injected failure ({status}) from the emulator's fault switches"
            )
        self.authenticate(authorization)

    def authenticate(self, authorization: str | None) -> None:
        """Refuses (401) a request whose ``authorization`` is not ``Bearer <the key>``."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), self.api_key.encode()
        ):
            raise ApiError(401, "Unauthorized: missing or invalid API key")
