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
    """

    latency: float = 0.0
    error_rate: float = 0.0
    fail_next: int = 0
    fail_status: int = 503
    fail_operations: list[str] = field(default_factory=list)
    fail_builds: bool = False
    timeout_builds: bool = False
    fail_deployments: bool = False
    seed: int = 0
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

    def reset(self) -> None:
        self.update(public_fields(Faults()))

    def update(self, changes: dict[str, Any], *, operations: frozenset[str] = frozenset()) -> None:
        """Sets the switches named in ``changes``; with ``operations`` (the operationIds
        served), ``fail_operations`` may name no other."""
        public = public_fields(self)
        unknown = set(changes) - set(public)
        if unknown:
            raise ValueError(f"unknown switches: {sorted(unknown)}; known: {sorted(public)}")
        coerced = {name: _coerce(public[name], value) for name, value in changes.items()}
        strange = set(coerced.get("fail_operations", ())) - operations
        if operations and strange:
            raise ValueError(f"fail_operations: no operation is called {sorted(strange)}")
        with self._lock:
            for name, value in coerced.items():
                setattr(self, name, value)
            if "seed" in changes:
                self._random.seed(self.seed)


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
