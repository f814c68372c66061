"""What a change to an endpoint would do, worked out once for the command and for its plan:
the endpoint, the version, the resources and the headline; or the refusal that stops it
before any check of limits or locks (no such endpoint, nothing to roll back to, a model the
registry lacks). Nothing here writes anything."""

from __future__ import annotations

import concurrent.futures
import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.admission.locker import Locker
from core.admission.roles import Action, Actor
from core.config import Environment
from core.errors import ChatOpsError
from core.events import Refusal
from core.marks import command, person
from core.resources import Resources
from core.store.models import Endpoint
from core.store.repos import Repositories

log = logging.getLogger("chatops.core")
MODEL_LOOKUP_S = 2.0  # the longest a deploy waits to learn whether the registry has its model


@dataclass(frozen=True)
class Intent:
    """One change as admission sees it, before limits and locks are checked."""

    action: Action
    environment: Environment
    endpoint: str
    model: str
    version: int | None  # None: `alias`, resolved when the rollout runs
    alias: str | None
    resources: Resources
    current: Endpoint | None  # what serves the endpoint now
    headline: str

    @property
    def what(self) -> str:
        return f"v{self.version}" if self.version is not None else f"@{self.alias}"


class Intents:
    def __init__(
        self,
        *,
        repos: Repositories,
        locker: Locker,
        known_models: Callable[[], list[str]] | None = None,
    ) -> None:
        self.repos = repos
        self.locker = locker
        # the registry's model names: a deploy of one it lacks is refused before anything
        # is announced
        self.known_models = known_models
        self._asking = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="models")

    def deploy(
        self,
        environment: Environment,
        *,
        model: str,
        version: int | None,
        alias: str | None,
        actor: Actor,
        approver: Actor | None = None,
    ) -> Intent | Refusal:
        """Serve `model` at `version` (or `alias`), with the endpoint's resources (or the
        environment's defaults for a first deploy)."""
        unknown = self.unknown_model(model)
        if unknown is not None:
            return unknown
        current = self.repos.endpoints.get(environment.name, model)
        what = f"v{version}" if version is not None else f"@{alias}"
        headline = f"{person(actor.shown)} is deploying {model} {what} to {environment.name}"
        if approver:
            headline += f" (approved by {person(approver.shown)})"
        return Intent(
            action=Action.DEPLOY,
            environment=environment,
            endpoint=model,
            model=model,
            version=version,
            alias=alias,
            resources=current.resources if current else environment.default,
            current=current,
            headline=headline,
        )

    def scale(
        self,
        environment: Environment,
        *,
        endpoint: str,
        cpu: float | None,
        memory_mb: int | None,
        replicas: int | None,
        gpus: int | None,
        actor: Actor,
    ) -> Intent | Refusal:
        """The same version with what is given changed, the rest as it is."""
        env = environment.name
        current = self.repos.endpoints.get(env, endpoint)
        if current is None:
            known = ", ".join(e.name for e in self.repos.endpoints.every(env)) or "none"
            return self.absent(
                env,
                endpoint,
                f"there is no endpoint `{endpoint}` in {env} (endpoints: {known}); deploy it "
                f"first with `{command(f'deploy {endpoint} v<N>')}`",
            )
        resources = Resources(
            cpu=cpu if cpu is not None else current.cpu,
            memory_mb=memory_mb if memory_mb is not None else current.memory_mb,
            replicas=replicas if replicas is not None else current.replicas,
            gpus=gpus if gpus is not None else current.gpus,
        )
        return self._of(
            Action.SCALE,
            environment,
            current,
            version=current.version,
            resources=resources,
            headline=(
                f"{person(actor.shown)} is scaling {endpoint} in {env} to {resources.describe()}"
            ),
        )

    def rollback(
        self, environment: Environment, *, endpoint: str, actor: Actor
    ) -> Intent | Refusal:
        """The version that served before the current one, with the current resources."""
        env = environment.name
        current = self.repos.endpoints.get(env, endpoint)
        previous = (
            self.repos.operations.previous_version(env, endpoint, current.version)
            if current
            else None
        )
        if current is None or previous is None:
            what = "is not deployed" if current is None else f"has served only v{current.version}"
            return self.absent(
                env,
                endpoint,
                f"{endpoint} in {env} {what}: there is nothing to roll back to (deploy a "
                f"version with `{command(f'deploy {endpoint} v<N>')}`)",
            )
        return self._of(
            Action.ROLLBACK,
            environment,
            current,
            version=previous,
            resources=current.resources,
            headline=(
                f"{person(actor.shown)} is rolling {endpoint} in {env} back from "
                f"v{current.version} to v{previous}"
            ),
        )

    def stop(self, environment: Environment, *, endpoint: str, actor: Actor) -> Intent | Refusal:
        """Every deployment of the endpoint stops."""
        env = environment.name
        current = self.repos.endpoints.get(env, endpoint)
        if current is None:
            return self.absent(env, endpoint, f"there is no endpoint `{endpoint}` in {env}")
        return self._of(
            Action.STOP,
            environment,
            current,
            version=current.version,
            resources=current.resources,
            headline=f"{person(actor.shown)} is stopping {endpoint} in {env}",
        )

    @staticmethod
    def _of(
        action: Action,
        environment: Environment,
        current: Endpoint,
        *,
        version: int,
        resources: Resources,
        headline: str,
    ) -> Intent:
        return Intent(
            action=action,
            environment=environment,
            endpoint=current.name,
            model=current.model,
            version=version,
            alias=None,
            resources=resources,
            current=current,
            headline=headline,
        )

    def absent(self, env: str, endpoint: str, text: str) -> Refusal:
        """`text` (the endpoint is not there to act on), unless the operation holding it says
        more (a first deploy under way)."""
        return self.locker.in_the_way(env, endpoint) or Refusal(text)

    def unknown_model(self, model: str) -> Refusal | None:
        """A refusal naming the closest registered model when the registry has no `model`;
        None when it has it, or cannot say now (the rollout's first step reports that)."""
        if self.known_models is None:
            return None
        # a registry slow to answer is not waited for here: the rollout's first step waits
        # for it, reporting in the thread meanwhile
        asked = self._asking.submit(self.known_models)
        try:
            names = asked.result(timeout=MODEL_LOOKUP_S)
        except concurrent.futures.TimeoutError:
            log.info("the registry did not list its models within %s s: deploying", MODEL_LOOKUP_S)
            return None
        except ChatOpsError as exc:
            log.info("could not list the registered models before a deploy: %s", exc.message)
            return None
        if model in names:
            return None
        close = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean `{close[0]}`?"
        elif names:
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            hint = f"registered models: {', '.join(names[:10])}{more}"
        else:
            hint = "the registry is empty"
        return Refusal(f"there is no model called `{model}` in the registry ({hint})")
