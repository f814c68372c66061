"""The CML target: endpoints served as CML models of one Cloudera AI workspace (API v2).

An endpoint is one CML model named `<endpoint>@<env>` (see `naming`: no two environments
sharing a project ever meet), tied to the registered model of its MLflow name. A rollout
builds the registered version (or reuses a build of it: `/scale` and rollbacks build
nothing), creates a deployment of that build with the requested resources (they belong to
the deployment), smoke-tests it through the model service, then stops every other
deployment of the model. Every remote id is remembered before it is waited on; a step
called again after a crash finds what it had created (a build of the same version, a
deployment tagged with the bot's id for it) instead of creating a second one.

The steps live beside this module, one concern each: `building`, `starting`, `retiring`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import httpx

from core.config import Environment
from core.errors import ConfigError, DeployFailed, TargetError
from core.resources import Resources
from core.targets.base import (
    Built,
    Comparison,
    EndpointRef,
    Health,
    ModelSource,
    SmokeTested,
    Started,
    Step,
    Traffic,
)
from core.targets.cml.api import CMLApi
from core.targets.cml.building import Builder
from core.targets.cml.calls import CallCounter
from core.targets.cml.client import CMLClient
from core.targets.cml.clients import open_client
from core.targets.cml.errors import CMLNotFound, auth_explained
from core.targets.cml.models import DeploymentStatus, ModelDeployment
from core.targets.cml.naming import Neighbours, model_name
from core.targets.cml.placements import Placed, Placements
from core.targets.cml.poller import Poller
from core.targets.cml.progress import deployment_detail, no_split, no_traffic, short
from core.targets.cml.retiring import Retirer
from core.targets.cml.serving import ModelService, model_service_url
from core.targets.cml.starting import DEPLOYMENT_TAG as DEPLOYMENT_TAG
from core.targets.cml.starting import Starter
from core.targets.cml.statuses import deployment_status
from core.targets.cml.workspace import Workspace
from core.versions import ModelVersion


class CMLTarget:
    """One CML environment. `calls` must count what `client` sends (the transport of a
    `CMLClient`; a `CMLServiceAdapter` tallies on it) for API calls to be counted
    (`connect` and `from_environment` wire both)."""

    kind = "cml"

    def __init__(
        self,
        *,
        env: Environment,
        client: CMLApi,
        api_key: str,
        calls: CallCounter | None = None,
        model_url: str | None = None,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 10.0,
        stop_timeout_s: float = 120.0,
        smoke_timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        sharing: Iterable[Environment] = (),
    ) -> None:
        self.env = env
        self.client = client
        self.calls = calls or CallCounter()
        self.poller = Poller(initial_s=poll_initial_s, max_s=poll_max_s, sleep=sleep)
        self.workspace = Workspace(
            client=client, env=env, poller=self.poller, neighbours=Neighbours.of(env, sharing)
        )
        self.placements = Placements(self.workspace)
        self.service = ModelService(
            url=model_url or model_service_url(env.url),
            api_key=api_key,
            poller=self.poller,
            timeout_s=smoke_timeout_s,
        )
        ws, poller = self.workspace, self.poller
        self.builder = Builder(
            client=client, env=env, workspace=ws, poller=poller, calls=self.calls
        )
        self.starter = Starter(
            client=client,
            env=env,
            workspace=ws,
            placements=self.placements,
            poller=poller,
            calls=self.calls,
            url=self.service.url,
        )
        self.retirer = Retirer(
            client=client,
            workspace=ws,
            placements=self.placements,
            poller=poller,
            timeout_s=stop_timeout_s,
        )

    @classmethod
    def connect(
        cls,
        *,
        env: Environment,
        api_key: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        **options: Any,
    ) -> CMLTarget:
        """A target with its own client, whose every request is counted."""
        calls = CallCounter(transport)
        client = CMLClient(
            base_url=env.url,
            api_key=api_key,
            transport=calls,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        return cls(env=env, client=client, api_key=api_key, calls=calls, **options)

    @classmethod
    def from_environment(
        cls, env: Environment, *, sharing: Iterable[Environment] = ()
    ) -> CMLTarget:
        """The target of a `cml` environment, its API key read from `$<env.api_key_env>`, its
        client the one the environment names (see `client_kind`); `sharing`: every
        environment configured, so models named by earlier versions are adopted only by
        their own endpoint (see `naming`)."""
        if env.target != "cml":
            raise ConfigError(f"environment {env.name} is a `{env.target}` environment, not cml")
        api_key = os.environ.get(env.api_key_env, "").strip()
        if not api_key:
            raise ConfigError(
                f"environment {env.name}: the variable {env.api_key_env} that should hold the "
                "CML API v2 key is not set"
            )
        calls = CallCounter()
        client = open_client(env, api_key=api_key, calls=calls)
        return cls(env=env, client=client, api_key=api_key, calls=calls, sharing=sharing)

    @property
    def api_calls(self) -> int:
        """API requests the calling thread sent since its operation began (its `build`)."""
        return self.calls.this_thread

    def _explained(self) -> AbstractContextManager[None]:
        return auth_explained(self.client.base_url, self.env.api_key_env)

    # -- a rollout -------------------------------------------------------------------------
    def build(self, ep: EndpointRef, mv: ModelVersion, source: ModelSource, step: Step) -> Built:
        """A CML build of `mv` on the endpoint's model (found or made); the input example
        comes from `source`. Counting the operation's API calls starts here."""
        self.calls.begin()
        with self._explained():
            return self.builder.build(model_name(ep), mv, source, step)

    def built(self, ep: EndpointRef, mv: ModelVersion) -> str | None:
        """The CML build of `mv` a rollout would reuse, as CML lists it; None: it builds."""
        with self._explained():
            return self.builder.existing(model_name(ep), mv)

    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        """A deployed CML deployment of `built` with `resources`, found by the bot's id
        `deployment` or created."""
        with self._explained():
            return self.starter.start(model_name(ep), mv, built, resources, deployment, step)

    def smoke_test(
        self, ep: EndpointRef, started: Started, built: Built, step: Step
    ) -> SmokeTested:
        """The example through the model service, answered by the new deployment: CML sends
        a model's traffic to its newest deployed deployment, which `start` just made."""
        with self._explained():
            model = self.workspace.model_named(model_name(ep), required=True)
            assert model is not None
            placed = self.placements.locate(model_name(ep), started.deployment)
        if built.example is None:
            return SmokeTested(latency_ms=0.0, prediction=None)
        step.say(f"sending the input example to CML deployment {short(started.deployment)}")
        auth = model.auth_enabled if model.auth_enabled is not None else self.env.model_auth
        answer = self.service.predict(model, built.example, auth=auth)
        if placed and placed.crn and answer.deployment_crn not in ("", placed.crn):
            raise DeployFailed(
                f"the smoke test was answered by another deployment than {short(placed.id)}"
            )
        return SmokeTested(latency_ms=answer.latency_ms, prediction=answer.prediction)

    def score(
        self, ep: EndpointRef, body: dict[str, Any], started: Started | None = None
    ) -> Any | None:
        """`body` through the model service, answered by what serves it now (asked before a
        new deployment is made: CML sends a model's traffic to its newest), or once
        `started`, by that new deployment: an answer from any other is no answer."""
        try:
            with self._explained():
                model = self.workspace.model_named(model_name(ep), required=True)
                assert model is not None
                placed = (
                    self.placements.locate(model_name(ep), started.deployment) if started else None
                )
            auth = model.auth_enabled if model.auth_enabled is not None else self.env.model_auth
            answer = self.service.predict(model, body, auth=auth)
        except Exception:  # an answer or none: what the diff is told, never a failed rollout
            return None
        if started is not None and (
            placed is None or not placed.crn or answer.deployment_crn != placed.crn
        ):
            return None  # answered by another deployment, or by one we cannot tell
        return answer.prediction

    def switch(self, ep: EndpointRef, new: str, step: Step) -> str:
        """`new` (deployed) takes the traffic; every other deployment of the model CML lists
        is stopped, whoever created it, and confirmed stopped (`CMLNotStopped` otherwise)."""
        name = model_name(ep)
        doing = f"retire the deployments of {ep.name} other than {short(new)}"
        with self._explained():
            serving = self.retirer.placed(name, new, f"switch {ep.name} to {short(new)}")
            if serving is None or deployment_status(serving.status) != DeploymentStatus.DEPLOYED:
                how = serving.status if serving else "ended or gone"
                raise DeployFailed(
                    f"CML deployment {short(new)} cannot take the traffic of {ep.name}: it is {how}"
                )
            self.placements.switch(name, new)
            others = [r for r in self.retirer.running(name, doing) if r.id != new]
            self.retirer.stop(name, others, step, doing)
        step.remember(api_calls=self.api_calls)
        return self.service.url

    def discard(self, ep: EndpointRef, deployment: str, step: Step) -> None:
        """Stops `deployment`, which never took traffic, and waits until CML says it ended."""
        name = model_name(ep)
        doing = f"stop deployment {short(deployment)} of {ep.name}"
        with self._explained():
            running = self.retirer.placed(name, deployment, doing)
            self.retirer.stop(name, [running] if running else [], step, doing)

    def stop(self, ep: EndpointRef, step: Step) -> None:
        """Stops every deployment of the endpoint's model CML lists, whoever created it, and
        returns once CML says each has ended; `CMLNotStopped` names what may still serve."""
        name = model_name(ep)
        doing = f"stop {ep.name} in {ep.env}"
        with self._explained():
            self.retirer.stop(name, self.retirer.running(name, doing), step, doing)

    # -- what serves -----------------------------------------------------------------------
    def health(self, ep: EndpointRef) -> Health:
        """One API call when this process knows where the endpoint serves from; three or so
        when it must find out (after a restart)."""
        name = model_name(ep)
        try:
            with self._explained():
                placed = self.placements.serving(name)
                if placed is not None:
                    dep = self._deployment(placed)
                    if (
                        dep is not None
                        and deployment_status(dep.status) == DeploymentStatus.DEPLOYED
                    ):
                        return self._up(placed, dep)
                found = self.placements.find_serving(name)
        except TargetError as exc:
            return Health(up=False, url=self.service.url, detail=exc.message)
        if isinstance(found, str):
            return Health(up=False, url=self.service.url, detail=found)
        return self._up(*found)

    def endpoints(self) -> list[EndpointRef]:
        """None: the project's CML models may be anyone's, and models named by earlier
        versions (`<env>-<endpoint>`) cannot be split back into their parts; the bot's records
        say what it runs here, and `health` and `stop` ask CML about each."""
        return []

    def _deployment(self, placed: Placed) -> ModelDeployment | None:
        ids = (self.workspace.project, placed.model_id, placed.build_id, placed.id)
        try:
            return self.client.get_model_deployment(*ids)
        except CMLNotFound:
            return None

    def _up(self, placed: Placed, dep: ModelDeployment) -> Health:
        return Health(
            up=True,
            url=self.service.url,
            deployment=placed.id,
            model=placed.model,
            version=placed.version,
            detail=deployment_detail(dep),
        )

    def traffic(self, ep: EndpointRef, window_s: float = 300.0) -> Traffic:
        """Unknown: CML API v2 offers no request metrics; the detail says where they are."""
        return Traffic(window_s=window_s, detail=no_traffic(model_name(ep)))

    def split(
        self,
        ep: EndpointRef,
        candidate: str,
        *,
        canary: int,
        shadow: int,
        tolerance: float,
        step: Step,
    ) -> None:
        """Refused: a Workbench model serves one active deployment at a time."""
        if canary or shadow:
            raise DeployFailed(no_split(model_name(ep)))

    def compare(self, ep: EndpointRef, candidate: str) -> Comparison:
        return Comparison(known=False, detail=no_split(model_name(ep)))

    def close(self) -> None:
        self.service.close()
        self.client.close()
