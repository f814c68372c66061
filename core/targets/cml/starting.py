"""Starting a deployment of a build with the requested resources (they belong to the
deployment, not the build), tagged with the bot's id for it so a resumed step finds it."""

from __future__ import annotations

import logging
import time

from core.config import Environment
from core.errors import DeployFailed, StepTimeout, TargetError
from core.resources import Resources
from core.targets.base import Built, Started, Step
from core.targets.cml.api import CMLApi
from core.targets.cml.calls import CallCounter
from core.targets.cml.models import (
    ROLLOUT_TERMINAL,
    CreateModelDeploymentRequest,
    DeploymentStatus,
    Model,
    ModelDeployment,
)
from core.targets.cml.placements import Placed, Placements
from core.targets.cml.poller import Poller
from core.targets.cml.progress import short
from core.targets.cml.statuses import Statuses, deployment_status
from core.targets.cml.workspace import Workspace, ident
from core.versions import ModelVersion

log = logging.getLogger("core.targets.cml")

DEPLOYMENT_TAG = "CHATOPS_DEPLOYMENT"  # environment variable on a deployment: the bot's id for it
CREATE_SENT = "cml_deployment_create_sent"  # recorded: the bot's id whose create was sent


class Starter:
    def __init__(
        self,
        *,
        client: CMLApi,
        env: Environment,
        workspace: Workspace,
        placements: Placements,
        poller: Poller,
        calls: CallCounter,
        url: str,
    ) -> None:
        self.client = client
        self.env = env
        self.workspace = workspace
        self.placements = placements
        self.poller = poller
        self.calls = calls
        self.url = url

    def start(
        self,
        name: str,
        mv: ModelVersion,
        built: Built,
        resources: Resources,
        deployment: str,
        step: Step,
    ) -> Started:
        """A deployed deployment of `built` on model `name`, found by the bot's id for it or
        created; remembered before it is waited on."""
        if resources.gpus and not self.env.limits.gpus:
            raise DeployFailed(f"{self.env.name} has no GPUs: leave out the gpu count")
        begun = time.monotonic()
        ws = self.workspace
        model = ws.model_named(name, required=True)
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
            # recorded before it is sent: a resumed step waits for it instead of sending
            # another, as this one would had its answer been lost
            sent_before = step.recall(CREATE_SENT) == deployment
            step.remember(**{CREATE_SENT: deployment})
            dep = ws.creator.once(
                f"a deployment of {mv.label}",
                lambda: self.client.create_model_deployment(
                    body, ws.project, ident(model), build_id
                ),
                lambda: ws.tagged_deployment(model, build_id, DEPLOYMENT_TAG, deployment),
                step,
                timeout_s=self.env.deploy_timeout_s,
                sent_before=sent_before,
            )
        step.remember(cml_deployment_id=dep.id, api_calls=self.calls.this_thread)
        dep = self._wait_deployed(model, build_id, dep, mv, step)
        self._keep_one(model, build_id, dep, deployment, step)
        self.placements.add(Placed.of(model, build_id, dep, mv.model, mv.version))
        calls = self.calls.this_thread
        step.remember(api_calls=calls)
        took = time.monotonic() - begun
        return Started(
            deployment=ident(dep),
            url=self.url,
            detail=(
                f"CML deployment {short(dep.id)} deployed with {resources.describe()} in "
                f"{took:.1f} s ({calls} API calls so far)"
            ),
        )

    def _wait_deployed(
        self, model: Model, build_id: str, dep: ModelDeployment, mv: ModelVersion, step: Step
    ) -> ModelDeployment:
        name = f"deployment {short(dep.id)} of {mv.label}"
        statuses = Statuses(
            step, kind="deployment", what=name, read=deployment_status, first=dep.status
        )
        if deployment_status(dep.status) not in ROLLOUT_TERMINAL:
            step.say(f"CML {name} is {dep.status}; waiting until it is deployed")
            polled = self.poller.until(
                lambda: self.client.get_model_deployment(
                    self.workspace.project, ident(model), build_id, ident(dep)
                ),
                lambda d: deployment_status(d.status) in ROLLOUT_TERMINAL,
                timeout_s=self.env.deploy_timeout_s,
                seen=lambda d: statuses.hear(d.status),
            )
            if not polled.done:
                self._tell_to_stop(ident(model), build_id, ident(dep))
                raise StepTimeout(
                    f"the CML {name} was still {polled.value.status} after "
                    f"{self.env.deploy_timeout_s:g} s (deploy_timeout_s of {self.env.name})"
                    f"{statuses.named_unknown()}; it was told to stop",
                    log_tail=" -> ".join(statuses.seen),
                )
            dep = polled.value
        if deployment_status(dep.status) != DeploymentStatus.DEPLOYED:
            raise DeployFailed(
                f"the CML {name} ended {dep.status}", log_tail=" -> ".join(statuses.seen)
            )
        return dep

    def _keep_one(
        self, model: Model, build_id: str, kept: ModelDeployment, deployment: str, step: Step
    ) -> None:
        """Stops every other deployment tagged for this step: a create held by a gateway and
        done after an earlier try gave up (or a bot that died mid-create) can leave two."""
        ws = self.workspace
        extra = [
            d
            for d in ws.tagged_deployments(model, build_id, DEPLOYMENT_TAG, deployment)
            if d.id != kept.id
        ]
        if not extra:
            return
        named = ", ".join(f"{short(d.id)} ({d.status})" for d in extra)
        step.say(
            f"CML holds {len(extra) + 1} deployments made for this step (a create answered "
            f"late): keeping {short(kept.id)}, stopping {named}"
        )
        for dep in extra:
            self._tell_to_stop(ident(model), build_id, ident(dep))

    def _tell_to_stop(self, model_id: str, build_id: str, deployment: str) -> None:
        # the timeout is the failure to report; `discard` confirms the stop afterwards
        try:
            self.client.stop_model_deployment(
                self.workspace.project, model_id, build_id, deployment
            )
        except TargetError as exc:
            log.warning("could not stop CML deployment %s: %s", deployment, exc.message)
