"""What the CML target finds or creates in its project: registered versions, models, builds
and deployments. Names and ids are matched on the client side too, never trusting a server's
filter to be exact or a list to come in any order it was not asked for."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime

from core.config import Environment
from core.errors import BuildFailed, DeployFailed, StepTimeout, TargetError
from core.targets.base import ModelSource, Step
from core.targets.cml.api import CMLApi
from core.targets.cml.client import iter_all
from core.targets.cml.creating import Creator
from core.targets.cml.errors import CMLAPIError
from core.targets.cml.models import (
    BuildStatus,
    CreateModelRequest,
    CreateRegisteredModelRequest,
    DeploymentStatus,
    Model,
    ModelBuild,
    ModelDeployment,
    RegisteredModelVersion,
    RegisteredVersionStatus,
)
from core.targets.cml.naming import Neighbours, legacy_name, owner
from core.targets.cml.poller import Poller
from core.targets.cml.statuses import (
    Statuses,
    build_status,
    deployment_status,
    version_status,
)
from core.versions import ModelVersion

# a build in any of these serves, or may yet: worth reusing rather than building again
REUSABLE_BUILDS = frozenset(
    {
        BuildStatus.PENDING,
        BuildStatus.QUEUED,
        BuildStatus.PUSHING,
        BuildStatus.SUCCEEDED,
        BuildStatus.BUILT,
    }
)
ENDING = frozenset({DeploymentStatus.STOPPING, DeploymentStatus.STOPPED})
_VERSION_DONE = frozenset({RegisteredVersionStatus.REGISTERED, RegisteredVersionStatus.FAILED})
_EPOCH = datetime.fromtimestamp(0, UTC)


class Workspace:
    def __init__(
        self,
        *,
        client: CMLApi,
        env: Environment,
        poller: Poller,
        neighbours: Neighbours | None = None,
    ) -> None:
        self.client = client
        self.env = env
        self.project = env.project_id
        self.neighbours = neighbours or Neighbours((env.name,))
        self.poller = poller
        self.creator = Creator(poller=poller)
        self._lock = threading.Lock()
        self._models: dict[str, Model] = {}  # by name: a model's id and access key never change

    # -- registry --------------------------------------------------------------------------
    def registered_version(
        self, mv: ModelVersion, source: ModelSource, step: Step
    ) -> RegisteredModelVersion:
        """The CML registry's entry for `mv` (registered from its MLflow run if the workspace's
        registry lacks it), once its status says it is registered."""
        version = self._find_version(mv)
        if version is None:
            version = self.creator.once(
                f"the CML registry's version of {mv.label}",
                lambda: self._register(mv, source, step),
                lambda: self._find_version(mv),
                step,
                timeout_s=self.env.build_timeout_s,
            )
        model_id, version_id = version.model_id or "", version.model_version_id or ""
        if version_status(version.status) not in _VERSION_DONE:
            statuses = Statuses(
                step,
                kind="registered version",
                what=f"registry entry of {mv.label}",
                read=version_status,
                first=version.status,
            )
            step.say(f"waiting for {mv.label} to be ready in the CML registry")
            polled = self.poller.until(
                lambda: self.client.get_registered_model_version(model_id, version_id),
                lambda v: version_status(v.status) in _VERSION_DONE,
                timeout_s=self.env.build_timeout_s,
                seen=lambda v: statuses.hear(v.status),
            )
            if not polled.done:
                raise StepTimeout(
                    f"{mv.label} was still {polled.value.status or 'without a status'} in the "
                    f"CML registry after {self.env.build_timeout_s:g} s" + statuses.named_unknown()
                )
            version = polled.value
        if version_status(version.status) == RegisteredVersionStatus.FAILED:
            raise BuildFailed(
                f"{mv.label} failed to register in CML", log_tail=version.error_message or ""
            )
        return version.model_copy(update={"model_id": model_id})

    def _find_version(self, mv: ModelVersion) -> RegisteredModelVersion | None:
        listed = iter_all(
            self.client.list_registered_models, search_filter={"model_name": mv.model}
        )
        found = next((m for m in listed if m.name == mv.model and m.model_id), None)
        if found is None or found.model_id is None:
            return None
        number = {"version_number": str(mv.version)}
        versions = iter_all(self.client.get_registered_model, found.model_id, search_filter=number)
        version = next((v for v in versions if v.number == mv.version), None)
        if version is None and mv.run_id:
            # registered from its run earlier (the CML registry numbers versions its own way)
            every = iter_all(self.client.get_registered_model, found.model_id)
            version = next((v for v in every if _run_of(v) == mv.run_id), None)
        return version.model_copy(update={"model_id": found.model_id}) if version else None

    def _register(
        self, mv: ModelVersion, source: ModelSource, step: Step
    ) -> RegisteredModelVersion:
        experiment_id = source.run_experiment(mv) if mv.run_id else ""
        if not mv.run_id or not experiment_id:
            raise BuildFailed(
                f"{mv.label} is not in the CML registry, and has no MLflow run to register from"
            )
        created = self.client.create_registered_model(
            CreateRegisteredModelRequest(
                project_id=self.project,
                experiment_id=experiment_id,
                run_id=mv.run_id,
                model_path=_model_path(mv),
                model_name=mv.model,
            )
        )
        if not created.model_versions:
            raise BuildFailed(f"CML registered {mv.label} but answered no version")
        version = created.model_versions[0]
        step.remember(cml_registered_version_id=version.model_version_id)
        step.say(
            f"{mv.label} was not in the CML registry: registered its run there as version "
            f"{version.number}"
        )
        return version.model_copy(update={"model_id": version.model_id or created.model_id})

    # -- models ----------------------------------------------------------------------------
    def model(self, name: str, registered_model_id: str, step: Step) -> Model:
        """The endpoint's CML model, created (with auth unless the environment turns it off)
        the first time."""
        model = self.model_named(name, required=False)
        if model is not None:
            return model
        ep = owner(name)
        whose = f"{ep.name} of environment {ep.env}" if ep else name
        body = CreateModelRequest(
            project_id=self.project,
            name=name,
            description=f"chatops endpoint {whose}",
            registered_model_id=registered_model_id or None,
            disable_authentication=not self.env.model_auth,
        )

        def create() -> Model:
            try:
                made = self.client.create_model(body, self.project)
            except CMLAPIError as exc:
                if exc.status_code != 409:  # another process created it between list and now
                    raise
                found = self.model_named(name, required=True)
                assert found is not None
                return found
            auth = "on" if made.auth_enabled else "off"
            step.say(f"created CML model {name} (authentication {auth})")
            return made

        model = self.creator.once(
            f"CML model {name}",
            create,
            lambda: self.model_named(name, required=False),
            step,
            timeout_s=self.env.build_timeout_s,
        )
        return self._keep(model, name)

    def model_named(self, name: str, *, required: bool) -> Model | None:
        """The model named `name` (`naming.model_name`) or, when there is none, the model an
        earlier version named for that endpoint alone (`CMLNameClash` when another endpoint
        sharing the project could own it)."""
        with self._lock:
            model = self._models.get(name)
        if model is not None:
            return model
        model = self._listed(name)
        ep = owner(name)
        if model is None and ep is not None:
            old = self._listed(legacy_name(ep))
            if old is not None and self.neighbours.adoptable(ep, legacy_name(ep)):
                model = old
        if model is None:
            if required:
                raise DeployFailed(f"there is no CML model {name} in project {self.project}")
            return None
        return self._keep(model, name)

    def _listed(self, name: str) -> Model | None:
        listed = iter_all(self.client.list_models, self.project, search_filter={"name": name})
        return next((m for m in listed if m.name == name and m.id), None)

    def _keep(self, model: Model, name: str | None = None) -> Model:
        with self._lock:
            self._models[name or model.name or ""] = model
        return model

    # -- builds ----------------------------------------------------------------------------
    def reusable_build(self, model: Model, version_id: str) -> ModelBuild | None:
        """The newest build of `version_id` on `model` that is built or still building, with
        the environment's runtime (any, if it names none)."""
        runtime = self.env.runtime_identifier
        for build in self._builds(model):
            if (
                build.registered_model_version_id == version_id
                and build_status(build.status) in REUSABLE_BUILDS
                and (not runtime or build.runtime_identifier == runtime)
            ):
                return build
        return None

    def _builds(self, model: Model, status: BuildStatus | None = None) -> list[ModelBuild]:
        # the status is compared here, not filtered by CML: a workspace spelling it another
        # way (`BUILT`) would match no filter of ours
        builds = iter_all(
            self.client.list_model_builds, self.project, model.id or "", sort="-created_at"
        )
        chosen = [
            b for b in builds if b.id and (status is None or build_status(b.status) == status)
        ]
        return sorted(chosen, key=lambda b: b.created_at or _EPOCH, reverse=True)

    # -- deployments -----------------------------------------------------------------------
    def tagged_deployment(
        self, model: Model, build_id: str, tag: str, value: str
    ) -> ModelDeployment | None:
        """A deployment of `build_id` created for the bot's deployment `value` and not ended
        (the oldest, when there are several)."""
        found = self.tagged_deployments(model, build_id, tag, value)
        return found[0] if found else None

    def tagged_deployments(
        self, model: Model, build_id: str, tag: str, value: str
    ) -> list[ModelDeployment]:
        """Every deployment of `build_id` created for the bot's deployment `value` and not
        ended, oldest first."""
        deployments = iter_all(
            self.client.list_model_deployments, self.project, model.id or "", build_id
        )
        tagged = [
            dep
            for dep in deployments
            if dep.id
            and _environment(dep).get(tag) == value
            and deployment_status(dep.status) not in ENDING
        ]
        return sorted(tagged, key=lambda d: d.created_at or _EPOCH)

    def serving_deployment(self, model: Model) -> tuple[ModelBuild, ModelDeployment] | None:
        """The deployment `model` serves from: the newest deployed one of its newest build that
        has one (CML routes a model's traffic to its newest deployed deployment). The spec names
        no filter or sort keys for deployments: both are done here."""
        for build in self._builds(model, status=BuildStatus.BUILT):
            listed = iter_all(
                self.client.list_model_deployments, self.project, model.id or "", build.id or ""
            )
            deployed = [
                d
                for d in listed
                if d.id and deployment_status(d.status) == DeploymentStatus.DEPLOYED
            ]
            if deployed:
                return build, max(deployed, key=lambda d: d.created_at or _EPOCH)
        return None

    def deployments(self, model: Model) -> list[tuple[ModelBuild, ModelDeployment]]:
        """Every deployment of `model`, of every build, whoever created it: what CML runs,
        not what the bot remembers."""
        found = []
        for build in self._builds(model):
            listed = iter_all(
                self.client.list_model_deployments, self.project, model.id or "", build.id or ""
            )
            found += [(build, dep) for dep in listed if dep.id]
        return found

    def find_deployment(
        self, model: Model, deployment_id: str
    ) -> tuple[ModelBuild, ModelDeployment] | None:
        """Where deployment `deployment_id` of `model` lives (after a restart of the bot)."""
        for build in self._builds(model, status=BuildStatus.BUILT):
            for dep in iter_all(
                self.client.list_model_deployments, self.project, model.id or "", build.id or ""
            ):
                if dep.id == deployment_id:
                    return build, dep
        return None


def ident(obj: Model | ModelBuild | ModelDeployment) -> str:
    """The id CML gave `obj`; a `TargetError` when it answered none."""
    if not obj.id:
        raise TargetError(f"CML answered a {type(obj).__name__} without an id")
    return obj.id


def _environment(dep: ModelDeployment) -> dict[str, str]:
    try:
        data = json.loads(dep.environment or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _run_of(version: RegisteredModelVersion) -> str:
    meta = version.model_version_metadata
    mlflow = meta.mlflow_metadata if meta else None
    return (mlflow.run_id if mlflow else None) or ""


def _model_path(mv: ModelVersion) -> str:
    """Where in its run the version's model was logged (MLflow's default: `model`)."""
    match = re.search(rf"/{re.escape(mv.run_id or '')}/artifacts/(.+?)/?$", mv.source)
    return match.group(1) if match else "model"
