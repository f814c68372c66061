"""What `/metrics` shows, in Prometheus' text format.

Two sources. What the state database holds is read when scraped (`core.metrics.page`): ended
operations by kind, environment and outcome with their durations, and what waits (operations
and Slack jobs), whichever bot process ran them. What only a process sees, calls to remote
APIs (CML, MLflow, Slack's Web API) and their failures, is counted where it happens
(`cml_call`, `slack_call`, `registry_call`, here); processes that `share` one directory count
into files there (prometheus_client's multiprocess mode), so the front's scrape sums its
worker's counts with its own.

Label values are bounded: route templates instead of paths, error codes checked against a
pattern, never free text, an id, a URL or a secret.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import Metric

__all__ = ["cml_call", "cml_route", "registry_call", "share", "slack_call"]

SHARED_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name: children inherit it
CALL_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# CML API v2 path segments that name a collection or an action; any other is an id
_CML_WORDS = frozenset(
    {"api", "v2", "projects", "models", "builds", "deployments", "registry", "versions"}
    | {"runtimes", "stop", "restart"}
)
_SLACK_METHOD = re.compile(r"^[a-zA-Z][a-zA-Z.]{0,63}$")
_SLACK_ERROR = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _Counters:
    """This process's counts of remote calls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.cml = Counter(
            "chatops_cml_requests",
            "Requests sent to CML API v2 (each retry too), by method, route and status (class)",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.cml_seconds = Histogram(
            "chatops_cml_request_duration_seconds",
            "Time CML API v2 took to answer (or fail), by method and route",
            ["method", "route"],
            buckets=CALL_BOUNDS,
            registry=self.registry,
        )
        self.slack = Counter(
            "chatops_slack_api_requests",
            "Slack Web API calls, by method",
            ["method"],
            registry=self.registry,
        )
        self.slack_errors = Counter(
            "chatops_slack_api_errors",
            "Slack Web API calls that failed, by method and Slack's error code",
            ["method", "error"],
            registry=self.registry,
        )
        self.registry_calls = Counter(
            "chatops_registry_requests",
            "Calls to the MLflow registry, by outcome (ok, error, unreachable)",
            ["outcome"],
            registry=self.registry,
        )


_counters: _Counters | None = None
_making = threading.Lock()


def _count() -> _Counters:
    global _counters
    if _counters is None:
        with _making:  # threads counting at once must not each make their own
            if _counters is None:
                _counters = _Counters()
    return _counters


def share(state_dir: Path, *, clean: bool = False) -> Path:
    """From now on this process counts into `<state_dir>/metrics`, where a front on this
    machine reads every process's counts; processes it starts inherit the directory. With
    `clean` (a front starting), the files of processes no longer alive go first, so counts
    stay monotonic while the front lives and the directory does not grow across restarts."""
    directory = state_dir / "metrics"
    directory.mkdir(parents=True, exist_ok=True)
    if clean:
        _forget_the_dead(directory)
    os.environ[SHARED_ENV] = str(directory)
    # prometheus_client picks where values live when it is first imported; this process may
    # have imported it before the directory was known
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    global _counters
    with _making:
        _counters = None  # counters made before this count into the files from now on
    return directory


def _forget_the_dead(directory: Path) -> None:
    for file in directory.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


# -- what a process counts (each a line at the edge that makes the call) -----------------------
def cml_call(method: str, path: str, status: int | None, seconds: float) -> None:
    """One request to CML answered `status` (None: no answer) after `seconds`."""
    route = cml_route(path)
    counters = _count()
    counters.cml.labels(method.upper(), route, _status_class(status)).inc()
    counters.cml_seconds.labels(method.upper(), route).observe(seconds)


def slack_call(method: str, error: str | None = None) -> None:
    """One Slack Web API call; `error`: Slack's error code when it failed."""
    method = method if _SLACK_METHOD.match(method) else "other"
    counters = _count()
    counters.slack.labels(method).inc()
    if error is not None:
        counters.slack_errors.labels(method, error if _SLACK_ERROR.match(error) else "other").inc()


def registry_call(outcome: str) -> None:
    """One call (or group of calls) to the MLflow registry: ok, error or unreachable."""
    _count().registry_calls.labels(outcome).inc()


def cml_route(path: str) -> str:
    """`/api/v2/projects/p-1/models/m-2:stop` -> `/api/v2/projects/{id}/models/{id}:stop`."""
    parts = []
    for segment in path.split("?", 1)[0].strip("/").split("/"):
        name, colon, action = segment.partition(":")
        name = name if name in _CML_WORDS else "{id}"
        parts.append(name + (colon + action if action in _CML_WORDS else ""))
    return "/" + "/".join(parts)


# answers an alert tells apart: a refused key, a lookup that found nothing, a throttle
_EXACT = frozenset({401, 403, 404, 429})


def _status_class(status: int | None) -> str:
    if status is None:
        return "unanswered"
    return str(status) if status in _EXACT else f"{status // 100}xx"


class ThisProcess:
    """This process's counts (a collector), when it shares no directory with others."""

    def collect(self) -> Iterator[Metric]:
        yield from _count().registry.collect()
