"""The CML target: endpoints served as CML models of one Cloudera AI workspace (API v2).

An endpoint is one CML model named `<env>-<endpoint>`, tied to the registered model of its
MLflow name. A rollout builds the registered version (or reuses a build of it: `/scale` and
rollbacks build nothing), creates a deployment of that build with the requested resources
(they belong to the deployment), smoke-tests it through the model service, then stops the
deployment that served before. Every remote id is remembered before it is waited on; a step
called again after a crash finds what it had created (a build of the same version, a
deployment tagged with the bot's id for it) instead of creating a second one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from core.config import Environment
from core.errors import BuildFailed, ConfigError, DeployFailed, StepTimeout, TargetError
from core.resources import Resources
from core.targets.base import Built, Checked, EndpointRef, Health, Started, Step
from core.targets.cml.calls import CallCounter
from core.targets.cml.client import CMLClient
from core.targets.cml.errors import CMLAuthError, CMLNotFound
from core.targets.cml.models import (
    BUILD_TERMINAL,
    ROLLOUT_TERMINAL,
    BuildStatus,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    DeploymentStatus,
    Model,
    ModelBuild,
    ModelDeployment,
)
from core.targets.cml.placements import Placed, Placements
from core.targets.cml.poller import Poller
from core.targets.cml.progress import (
    Statuses,
    build_comment,
    build_tail,
    deployment_detail,
    short,
)
from core.targets.cml.serving import ModelService, input_example, model_service_url
from core.targets.cml.workspace import Workspace

if TYPE_CHECKING:
    from core.registry.mlflow import ModelVersion, Registry

log = logging.getLogger("core.targets.cml")

DEPLOYMENT_TAG = "CHATOPS_DEPLOYMENT"  # environment variable on a deployment: the bot's id for it
ENDED = frozenset({DeploymentStatus.STOPPED, DeploymentStatus.FAILED})


class CMLTarget:
    """One CML environment. `calls` must be the transport `client` sends through for API calls
    to be counted (`connect` and `from_environment` wire both)."""

    kind = "cml"

    def __init__(
        self,
        *,
        env: Environment,
        client: CMLClient,
        api_key: str,
        calls: CallCounter | None = None,
        model_url: str | None = None,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 10.0,
        stop_timeout_s: float = 120.0,
        smoke_timeout_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.env = env
        self.client = client
        self.calls = calls or CallCounter()
        self.poller = Poller(initial_s=poll_initial_s, max_s=poll_max_s, sleep=sleep)
        self.stop_timeout_s = stop_timeout_s
        self.workspace = Workspace(client=client, env=env, poller=self.poller)
        self.placements = Placements(self.workspace)
        self.service = ModelService(
            url=model_url or model_service_url(env.url),
            api_key=api_key,
            poller=self.poller,
            timeout_s=smoke_timeout_s,
        )
        self._lock = threading.Lock()
        # `switch` is given no Step: it tells people through the one its rollout's `start` had
        self._steps: dict[str, Step] = {}

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
    def from_environment(cls, env: Environment) -> CMLTarget:
        """The target of a `cml` environment, its API key read from `$<env.api_key_env>`."""
        if env.target != "cml":
            raise ConfigError(f"environment {env.name} is a `{env.target}` environment, not cml")
        api_key = os.environ.get(env.api_key_env, "").strip()
        if not api_key:
            raise ConfigError(
                f"environment {env.name}: the variable {env.api_key_env} that should hold the "
                "CML API v2 key is not set"
            )
        return cls.connect(env=env, api_key=api_key)

    @property
    def api_calls(self) -> int:
        """API requests the calling thread sent since its operation began (its `build`)."""
        return self.calls.this_thread

    # -- build -----------------------------------------------------------------------------
    def build(self, ep: EndpointRef, mv: ModelVersion, registry: Registry, step: Step) -> Built:
        self.calls.begin()
        begun = time.monotonic()
        ws = self.workspace
        with self._auth_hint():
            version = ws.registered_version(mv, registry, step)
            model = ws.model(_name(ep), version.model_id or "", step)
            build = ws.reusable_build(model, version.model_version_id or "")
            reused = build is not None
            if build is None:
                body = CreateModelBuildRequest(
                    registered_model_version_id=version.model_version_id,
                    runtime_identifier=self.env.runtime_identifier or None,
                    comment=build_comment(mv),
                )
                build = self.client.create_model_build(body, ws.project, _id(model))
            step.remember(cml_model_id=model.id, build_id=build.id, api_calls=self.api_calls)
            build = self._wait_built(model, build, mv, step)
        example = input_example(registry, mv)
        calls = self.api_calls
        step.remember(api_calls=calls)
        took = time.monotonic() - begun
        how = "reused" if reused else "built"
        lacks = "; it has no input example" if example is None else ""
        return Built(
            ref=_id(build),
            example=example,
            detail=(
                f"{mv.label} {how} as CML build {short(build.id)} in {took:.1f} s "
                f"({calls} API calls){lacks}"
            ),
        )

    def _wait_built(
        self, model: Model, build: ModelBuild, mv: ModelVersion, step: Step
    ) -> ModelBuild:
        name = f"build {short(build.id)} of {mv.label}"
        statuses = Statuses(step, name, build.status)
        if build.status not in BUILD_TERMINAL:
            step.say(f"CML {name} is {build.status}; waiting until it is built")
            polled = self.poller.until(
                lambda: self.client.get_model_build(self.workspace.project, _id(model), _id(build)),
                lambda b: b.status in BUILD_TERMINAL,
                timeout_s=self.env.build_timeout_s,
                seen=lambda b: statuses.hear(b.status),
            )
            build = polled.value
            if not polled.done:
                raise StepTimeout(
                    f"the CML {name} was still {build.status} after "
                    f"{self.env.build_timeout_s:g} s (build_timeout_s of {self.env.name})",
                    log_tail=build_tail(model, build, statuses.seen),
                )
        if build.status != BuildStatus.BUILT:
            raise BuildFailed(
                f'the CML {name} ended "{build.status}"',
                log_tail=build_tail(model, build, statuses.seen),
            )
        return build

    # -- start -----------------------------------------------------------------------------
    def start(
        self,
        ep: EndpointRef,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        if resources.gpus and not self.env.limits.gpus:
            raise DeployFailed(f"{self.env.name} has no GPUs: leave out the gpu count")
        begun = time.monotonic()
        ws = self.workspace
        with self._auth_hint():
            model = ws.model_named(_name(ep), required=True)
            assert model is not None
            build_id = built.ref
            dep = ws.tagged_deployment(model, build_id, DEPLOYMENT_TAG, deployment)
            if dep is None:
                body = CreateModelDeploymentRequest(
                    cpu=resources.cpu,
                    memory=resources.memory_mb / 1024,
                    nvidia_gpus=resources.gpus or None,
                    replicas=resources.replicas,
                    environment={DEPLOYMENT_TAG: deployment},
                )
                dep = self.client.create_model_deployment(body, ws.project, _id(model), build_id)
            step.remember(cml_deployment_id=dep.id, api_calls=self.api_calls)
            with self._lock:
                self._steps[_name(ep)] = step
            dep = self._wait_deployed(model, build_id, dep, mv, step)
        self.placements.add(Placed.of(model, build_id, dep, mv.model, mv.version))
        calls = self.api_calls
        step.remember(api_calls=calls)
        took = time.monotonic() - begun
        return Started(
            deployment=_id(dep),
            url=self.service.url,
            detail=(
                f"CML deployment {short(dep.id)} deployed with {resources.describe()} in "
                f"{took:.1f} s ({calls} API calls so far)"
            ),
        )

    def _wait_deployed(
        self, model: Model, build_id: str, dep: ModelDeployment, mv: ModelVersion, step: Step
    ) -> ModelDeployment:
        name = f"deployment {short(dep.id)} of {mv.label}"
        statuses = Statuses(step, name, dep.status)
        if dep.status not in ROLLOUT_TERMINAL:
            step.say(f"CML {name} is {dep.status}; waiting until it is deployed")
            polled = self.poller.until(
                lambda: self.client.get_model_deployment(
                    self.workspace.project, _id(model), build_id, _id(dep)
                ),
                lambda d: d.status in ROLLOUT_TERMINAL,
                timeout_s=self.env.deploy_timeout_s,
                seen=lambda d: statuses.hear(d.status),
            )
            if not polled.done:
                self._stop_quietly(_id(model), build_id, _id(dep))
                raise StepTimeout(
                    f"the CML {name} was still {polled.value.status} after "
                    f"{self.env.deploy_timeout_s:g} s (deploy_timeout_s of {self.env.name}); "
                    "it was told to stop",
                    log_tail=" -> ".join(statuses.seen),
                )
            dep = polled.value
        if dep.status != DeploymentStatus.DEPLOYED:
            raise DeployFailed(
                f"the CML {name} ended {dep.status}", log_tail=" -> ".join(statuses.seen)
            )
        return dep

    # -- check -----------------------------------------------------------------------------
    def check(self, ep: EndpointRef, started: Started, built: Built) -> Checked:
        """The example through the model service, answered by the new deployment: CML sends
        a model's traffic to its newest deployed deployment, which `start` just made."""
        with self._auth_hint():
            model = self.workspace.model_named(_name(ep), required=True)
            assert model is not None
            placed = self.placements.locate(_name(ep), started.deployment)
        if built.example is None:
            return Checked(latency_ms=0.0, prediction=None)
        auth = model.auth_enabled if model.auth_enabled is not None else self.env.model_auth
        answer = self.service.predict(model, built.example, auth=auth)
        if placed and placed.crn and answer.deployment_crn not in ("", placed.crn):
            raise DeployFailed(
                f"the smoke test was answered by another deployment than {short(placed.id)}"
            )
        return Checked(latency_ms=answer.latency_ms, prediction=answer.prediction)

    # -- switch and stop -------------------------------------------------------------------
    def switch(self, ep: EndpointRef, new: str, old: str | None) -> str:
        """CML routes a model's traffic to its newest deployed deployment: `new`, once up."""
        self.placements.switch(_name(ep), new)
        with self._lock:
            step = self._steps.pop(_name(ep), None)
        if old and old != new:
            self._retire(ep, old, step)
        if step is not None:
            step.remember(api_calls=self.api_calls)
        return self.service.url

    def _retire(self, ep: EndpointRef, old: str, step: Step | None) -> None:
        def say(text: str) -> None:
            log.warning("%s/%s: %s", ep.env, ep.name, text)
            if step is not None:
                step.say(text)

        try:
            with self._auth_hint():
                placed = self.placements.locate(_name(ep), old)
                if placed is None:
                    say(f"the previous deployment {short(old)} is not in CML any more")
                    return
                ids = (self.workspace.project, placed.model_id, placed.build_id, placed.id)
                if self.client.get_model_deployment(*ids).status in ENDED:
                    return
                self.client.stop_model_deployment(*ids)
                polled = self.poller.until(
                    lambda: self.client.get_model_deployment(*ids),
                    lambda d: d.status in ENDED,
                    timeout_s=self.stop_timeout_s,
                )
        except TargetError as exc:
            say(f"could not stop the previous deployment {short(old)}: {exc.message}")
            return
        if not polled.done:
            say(
                f"the previous deployment {short(old)} is still {polled.value.status} after "
                f"{self.stop_timeout_s:g} s; CML goes on stopping it"
            )

    def stop(self, ep: EndpointRef, deployment: str) -> None:
        """Tells CML to stop `deployment`. Best effort: it runs while a rollout is already
        failing, so a failure to stop is logged, not raised."""
        try:
            with self._auth_hint():
                placed = self.placements.locate(_name(ep), deployment)
                if placed is not None:
                    self._stop_quietly(placed.model_id, placed.build_id, placed.id)
        except TargetError as exc:
            log.warning("could not stop CML deployment %s: %s", deployment, exc.message)

    def _stop_quietly(self, model_id: str, build_id: str, deployment: str) -> None:
        try:
            self.client.stop_model_deployment(
                self.workspace.project, model_id, build_id, deployment
            )
        except TargetError as exc:
            log.warning("could not stop CML deployment %s: %s", deployment, exc.message)

    # -- health ----------------------------------------------------------------------------
    def health(self, ep: EndpointRef) -> Health:
        """One API call when this process knows where the endpoint serves from; three or so
        when it must find out (after a restart)."""
        name = _name(ep)
        try:
            with self._auth_hint():
                placed = self.placements.serving(name)
                if placed is not None:
                    dep = self._deployment(placed)
                    if dep is not None and dep.status == DeploymentStatus.DEPLOYED:
                        return self._up(placed, dep)
                found = self.placements.find_serving(name)
        except TargetError as exc:
            return Health(up=False, url=self.service.url, detail=exc.message)
        if isinstance(found, str):
            return Health(up=False, url=self.service.url, detail=found)
        return self._up(*found)

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

    # -- secrets ---------------------------------------------------------------------------
    @contextmanager
    def _auth_hint(self) -> Iterator[None]:
        try:
            yield
        except CMLAuthError as exc:
            raise CMLAuthError(
                f"CML at {self.client.base_url} refused the API key in ${self.env.api_key_env} "
                f"(HTTP {exc.status_code} on {exc.method} {exc.path}): put a valid API v2 key "
                "for this workspace in that variable",
                status_code=exc.status_code,
                cml_message=exc.cml_message,
                code=exc.code,
                method=exc.method,
                path=exc.path,
            ) from None

    def close(self) -> None:
        self.service.close()
        self.client.close()


def _name(ep: EndpointRef) -> str:
    return f"{ep.env}-{ep.name}"


def _id(obj: Model | ModelBuild | ModelDeployment) -> str:
    if not obj.id:
        raise TargetError(f"CML answered a {type(obj).__name__} without an id")
    return obj.id
