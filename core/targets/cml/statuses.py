"""Statuses as CML spells them, read one way.

CML's services and tools spell the same status in several ways: `deployed`, `Deployed`,
`MODEL_DEPLOYMENT_DEPLOYED`; `build failed`, `BUILD_FAILED`; `deployment_failed`; and the
registry, MLflow's `READY` or `PENDING_REGISTRATION`. Every comparison the target makes goes
through `build_status`, `deployment_status` or `version_status`, which answer the canonical
value or None for a status they do not know. A status not known is never success: it is
waited on within the step's timeout, logged once and said once in the operation's thread.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping

from core.targets.base import Step
from core.targets.cml.models import BuildStatus, DeploymentStatus, RegisteredVersionStatus

log = logging.getLogger("core.targets.cml")

_BUILD_PREFIXES = ("model_build_", "build_")
_DEPLOYMENT_PREFIXES = ("model_deployment_", "deployment_")
_VERSION_PREFIXES = ("registered_model_version_", "model_version_", "version_")

_BUILD_ALIASES: Mapping[str, BuildStatus] = {
    **{s.value.replace(" ", "_"): s for s in BuildStatus},
    "failed": BuildStatus.BUILD_FAILED,
    "timed_out": BuildStatus.TIMEDOUT,
}
_DEPLOYMENT_ALIASES: Mapping[str, DeploymentStatus] = {s.value: s for s in DeploymentStatus}
_VERSION_ALIASES: Mapping[str, RegisteredVersionStatus] = {
    **{s.value.lower(): s for s in RegisteredVersionStatus},
    # MLflow's own spellings of a model version's status
    "pending_registration": RegisteredVersionStatus.REGISTERING,
    "ready": RegisteredVersionStatus.REGISTERED,
    "failed_registration": RegisteredVersionStatus.FAILED,
}


def _key(raw: str | None, prefixes: tuple[str, ...]) -> str:
    key = re.sub(r"[\s\-]+", "_", (raw or "").strip().lower())
    for prefix in prefixes:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :]
    return key


def build_status(raw: str | None) -> BuildStatus | None:
    """The build status `raw` spells (`BUILD_FAILED`, `Built`, `build failed`…); None if
    it is none CML documents."""
    key = re.sub(r"[\s\-]+", "_", (raw or "").strip().lower())
    return _BUILD_ALIASES.get(key) or _BUILD_ALIASES.get(_key(raw, _BUILD_PREFIXES))


def deployment_status(raw: str | None) -> DeploymentStatus | None:
    """The deployment status `raw` spells (`MODEL_DEPLOYMENT_DEPLOYED`, `Deployed`,
    `deployment_failed`…); None if it is none CML documents."""
    return _DEPLOYMENT_ALIASES.get(_key(raw, _DEPLOYMENT_PREFIXES))


def version_status(raw: str | None) -> RegisteredVersionStatus | None:
    """The registered model version status `raw` spells (`REGISTERED`, `READY`,
    `MODEL_VERSION_REGISTERING`…); None if it is none known."""
    key = re.sub(r"[\s\-]+", "_", (raw or "").strip().lower())
    return _VERSION_ALIASES.get(key) or _VERSION_ALIASES.get(_key(raw, _VERSION_PREFIXES))


_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def log_unknown(kind: str, raw: str) -> None:
    """Logs a status no normaliser knows, once per kind and spelling in this process."""
    with _logged_lock:
        if (kind, raw) in _logged:
            return
        _logged.add((kind, raw))
    log.warning(
        "CML answered a %s status this bot does not know: %r; waiting on it as not yet done",
        kind,
        raw,
    )


class Statuses:
    """Says each new status of a remote object once in the operation's thread, keeps the ones
    seen, and tells (once) of a status `read` does not know."""

    def __init__(
        self,
        step: Step,
        *,
        kind: str,
        what: str,
        read: Callable[[str | None], object | None],
        first: str | None,
    ) -> None:
        self.step = step
        self.kind = kind
        self.what = what
        self.read = read
        self.seen: list[str] = []
        self.unknown: list[str] = []
        self.hear(first, quiet=True)

    def hear(self, raw: str | None, *, quiet: bool = False) -> None:
        status = raw or "unknown"
        if not self.seen or status != self.seen[-1]:
            self.seen.append(status)
            if not quiet:
                self.step.say(f"CML {self.what}: {status}")
        if self.read(raw) is None and status not in self.unknown:
            self.unknown.append(status)
            log_unknown(self.kind, status)
            self.step.say(
                f"CML {self.what} is in a {self.kind} status this bot does not know "
                f"({status!r}): not taken as done; waiting on it within the timeout"
            )

    def named_unknown(self) -> str:
        """The unknown statuses seen, to name in a timeout (empty when there were none)."""
        if not self.unknown:
            return ""
        return f"; CML answered {self.kind} statuses this bot does not know: " + ", ".join(
            repr(s) for s in self.unknown
        )
