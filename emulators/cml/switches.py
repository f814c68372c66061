"""Knobs a test (or the admin endpoint) turns at run time: timings and injected faults."""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timings:
    """Seconds each stage lasts. The defaults are tiny, for tests; ``realistic()`` for demos."""

    registration: float = 0.05
    build_pending: float = 0.02
    build_queued: float = 0.02
    build_pushing: float = 0.02
    build_timeout: float = 120.0
    deploy_pending: float = 0.02
    deploying: float = 0.05
    stopping: float = 0.02

    @classmethod
    def realistic(cls) -> Timings:
        return cls(
            registration=2.0,
            build_pending=2.0,
            build_queued=3.0,
            build_pushing=5.0,
            build_timeout=1800.0,
            deploy_pending=2.0,
            deploying=8.0,
            stopping=3.0,
        )


@dataclass
class Faults:
    """Faults injected into API v2 calls (``/api/v2/...``); ``/model`` and admin calls are spared.

    latency: seconds added to every call. error_rate: share of calls answered ``fail_status``.
    fail_next: the next N calls are answered ``fail_status``. fail_operations: the spec's
    operationIds (e.g. ``StopModelDeployment``) error_rate and fail_next apply to; empty, every
    call (a workspace whose stops fail while reads succeed). fail_builds / timeout_builds:
    builds created while set end "build failed" / "timedout". fail_deployments: deployments
    created (or restarted) while set end "failed".

    Lost replies, for calls CML did but whose answer never arrived: lose_reply_next: the next
    N calls of lose_reply_operations (operationIds; empty, every call) do their work and then
    lose the reply, as lose_reply_how says: "status" answers fail_status (a 5xx or 429 after
    the work), "close" closes the connection halfway through the answer, "hang" holds the
    answer hang_s seconds (past a client's timeout) and then closes. ``reset()`` lets held
    answers go at once.

    A slow gateway: hold_next: the next N calls of hold_operations (operationIds; empty,
    every call) are held hold_s seconds before they reach the workspace, and then done all
    the same (a client that gave up by then never hears; one still listening gets the
    answer). ``reset()`` lets held calls go on at once.

    Statuses in other spellings: status_spelling "upper" (``BUILT``, ``BUILD_FAILED``),
    "prefixed" (``BUILD_BUILT``, ``MODEL_DEPLOYMENT_DEPLOYED``, ``MODEL_VERSION_REGISTERED``),
    "title" (``Built``, ``Deployed``), "mlflow" (a registered version ``READY`` or
    ``PENDING_REGISTRATION``); "" as the spec's examples. unknown_status: when set, every
    status of unknown_status_of ("build", "deployment" or "registered_version") is answered as
    this value instead, but stopping and stopped (a stop still reads as one).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    fail_operations: list[str] = field(default_factory=list)
    fail_builds: bool = False
    timeout_builds: bool = False
    fail_deployments: bool = False
    lose_reply_next: int = 0
    lose_reply_operations: list[str] = field(default_factory=list)
    lose_reply_how: str = "status"
    hang_s: float = 30.0
    hold_next: int = 0
    hold_operations: list[str] = field(default_factory=list)
    hold_s: float = 45.0
    status_spelling: str = ""
    unknown_status: str = ""
    unknown_status_of: str = "deployment"
    seed: int = 0
    _release: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def failure_for_next_call(self, operation: str = "") -> int | None:
        """The status to answer the call of ``operation`` (its operationId) now arriving
        with, or None to serve it."""
        with self._lock:
            if self.fail_operations and operation not in self.fail_operations:
                return None
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_status
            if self.error_rate and self._random.random() < self.error_rate:
                return self.fail_status
        return None

    def reply_lost(self, operation: str) -> str | None:
        """How the reply to the call of ``operation`` just done is lost, or None to send it."""
        with self._lock:
            if self.lose_reply_next <= 0:
                return None
            if self.lose_reply_operations and operation not in self.lose_reply_operations:
                return None
            self.lose_reply_next -= 1
            return self.lose_reply_how

    def held(self, operation: str) -> bool:
        """Whether the call of ``operation`` now arriving is held before it is done."""
        with self._lock:
            if self.hold_next <= 0:
                return False
            if self.hold_operations and operation not in self.hold_operations:
                return False
            self.hold_next -= 1
            return True

    def hold_back(self) -> None:
        """Holds a call for hold_s seconds before it is done, or until ``reset()``."""
        self._release.wait(self.hold_s)

    def hold(self) -> None:
        """Holds a reply for hang_s seconds, or until ``reset()``."""
        self._release.wait(self.hang_s)

    def respell(self, kind: str, status: str) -> str:
        """``status`` of a ``kind`` ("build", "deployment", "registered_version") as the
        switches have CML spell it."""
        if self.unknown_status and kind == self.unknown_status_of and status not in _STOPS:
            return self.unknown_status
        spelling = self.status_spelling
        if spelling == "upper":
            return status.upper().replace(" ", "_")
        if spelling == "title":
            return status.title()
        if spelling == "prefixed":
            prefix = {"build": "BUILD_", "deployment": "MODEL_DEPLOYMENT_"}.get(
                kind, "MODEL_VERSION_"
            )
            return prefix + status.upper().removeprefix("BUILD ").replace(" ", "_")
        if spelling == "mlflow" and kind == "registered_version":
            return _MLFLOW_VERSION.get(status, status)
        return status

    def reset(self) -> None:
        self.update(public_fields(Faults()))
        self._release.set()  # let every held reply go
        self._release.clear()

    def update(self, changes: dict[str, Any], *, operations: frozenset[str] = frozenset()) -> None:
        """Sets the switches named in ``changes``; with ``operations`` (the operationIds
        served), ``fail_operations`` may name no other."""
        public = public_fields(self)
        unknown = set(changes) - set(public)
        if unknown:
            raise ValueError(f"unknown switches: {sorted(unknown)}; known: {sorted(public)}")
        coerced = {name: _coerce(public[name], value) for name, value in changes.items()}
        for listed in ("fail_operations", "lose_reply_operations", "hold_operations"):
            strange = set(coerced.get(listed, ())) - operations
            if operations and strange:
                raise ValueError(f"{listed}: no operation is called {sorted(strange)}")
        for name, allowed in _CHOICES.items():
            if name in coerced and coerced[name] not in allowed:
                raise ValueError(f"{name}: {coerced[name]!r} is not one of {sorted(allowed)}")
        with self._lock:
            for name, value in coerced.items():
                setattr(self, name, value)
            if "seed" in changes:
                self._random.seed(self.seed)


_STOPS = frozenset({"stopping", "stopped"})
_MLFLOW_VERSION = {
    "REGISTERING": "PENDING_REGISTRATION",
    "REGISTERED": "READY",
    "FAILED": "FAILED_REGISTRATION",
}
_CHOICES = {
    "lose_reply_how": frozenset({"status", "close", "hang"}),
    "status_spelling": frozenset({"", "upper", "prefixed", "title", "mlflow"}),
    "unknown_status_of": frozenset({"build", "deployment", "registered_version"}),
}


def public_fields(obj: Any) -> dict[str, Any]:
    return {
        f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if not f.name.startswith("_")
    }


def _coerce(current: Any, value: Any) -> Any:
    if isinstance(current, list):  # a JSON list, or names separated by commas
        items = value.split(",") if isinstance(value, str) else list(value)
        return [str(item).strip() for item in items if str(item).strip()]
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    return type(current)(value)


def update_timings(timings: Timings, changes: dict[str, Any]) -> None:
    known = public_fields(timings)
    unknown = set(changes) - set(known)
    if unknown:
        raise ValueError(f"unknown timings: {sorted(unknown)}; known: {sorted(known)}")
    for name, value in changes.items():
        setattr(timings, name, float(value))
