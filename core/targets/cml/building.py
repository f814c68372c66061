"""Making a registered version runnable on CML: the registry entry, the endpoint's model, and
a build of the version (one it already has, when there is one: `/scale` and rollbacks build
nothing)."""

from __future__ import annotations

import time

from core.config import Environment
from core.errors import BuildFailed, StepTimeout
from core.targets.base import Built, ModelSource, Step
from core.targets.cml.api import CMLApi
from core.targets.cml.calls import CallCounter
from core.targets.cml.models import (
    BUILD_TERMINAL,
    BuildStatus,
    CreateModelBuildRequest,
    Model,
    ModelBuild,
)
from core.targets.cml.poller import Poller
from core.targets.cml.progress import build_comment, build_tail, short
from core.targets.cml.serving import input_example
from core.targets.cml.statuses import Statuses, build_status
from core.targets.cml.workspace import Workspace, ident
from core.versions import ModelVersion


class Builder:
    def __init__(
        self,
        *,
        client: CMLApi,
        env: Environment,
        workspace: Workspace,
        poller: Poller,
        calls: CallCounter,
    ) -> None:
        self.client = client
        self.env = env
        self.workspace = workspace
        self.poller = poller
        self.calls = calls

    def build(self, name: str, mv: ModelVersion, source: ModelSource, step: Step) -> Built:
        """A built CML build of `mv` on model `name`, found or made; its ids are remembered
        before it is waited on. `BuildFailed` / `StepTimeout` when it does not build."""
        begun = time.monotonic()
        ws = self.workspace
        version = ws.registered_version(mv, source, step)
        model = ws.model(name, version.model_id or "", step)
        build = ws.reusable_build(model, version.model_version_id or "")
        reused = build is not None
        if build is None:
            body = CreateModelBuildRequest(
                registered_model_version_id=version.model_version_id,
                runtime_identifier=self.env.runtime_identifier or None,
                comment=build_comment(mv),
            )
            build = ws.creator.once(
                f"a build of {mv.label}",
                lambda: self.client.create_model_build(body, ws.project, ident(model)),
                lambda: ws.reusable_build(model, version.model_version_id or ""),
                step,
                timeout_s=self.env.build_timeout_s,
            )
        step.remember(cml_model_id=model.id, build_id=build.id, api_calls=self.calls.this_thread)
        build = self._wait_built(model, build, mv, step)
        example = input_example(source, mv)
        calls = self.calls.this_thread
        step.remember(api_calls=calls)
        took = time.monotonic() - begun
        how = "reused" if reused else "built"
        lacks = "; it has no input example" if example is None else ""
        return Built(
            ref=ident(build),
            example=example,
            detail=(
                f"{mv.label} {how} as CML build {short(build.id)} in {took:.1f} s "
                f"({calls} API calls){lacks}"
            ),
        )

    def existing(self, name: str, mv: ModelVersion) -> str | None:
        """The build of `mv` on model `name` that `build` would reuse, found by listing (it
        creates and registers nothing); None when it would make one."""
        ws = self.workspace
        version = ws._find_version(mv)
        model = ws.model_named(name, required=False)
        if version is None or model is None:
            return None
        build = ws.reusable_build(model, version.model_version_id or "")
        if build is None:
            return None
        return f"CML build {short(build.id or '')} of {mv.label} ({build.status})"

    def _wait_built(
        self, model: Model, build: ModelBuild, mv: ModelVersion, step: Step
    ) -> ModelBuild:
        name = f"build {short(build.id)} of {mv.label}"
        statuses = Statuses(step, kind="build", what=name, read=build_status, first=build.status)
        if build_status(build.status) not in BUILD_TERMINAL:
            step.say(f"CML {name} is {build.status}; waiting until it is built")
            polled = self.poller.until(
                lambda: self.client.get_model_build(
                    self.workspace.project, ident(model), ident(build)
                ),
                lambda b: build_status(b.status) in BUILD_TERMINAL,
                timeout_s=self.env.build_timeout_s,
                seen=lambda b: statuses.hear(b.status),
            )
            build = polled.value
            if not polled.done:
                raise StepTimeout(
                    f"the CML {name} was still {build.status} after "
                    f"{self.env.build_timeout_s:g} s (build_timeout_s of {self.env.name})"
                    + statuses.named_unknown(),
                    log_tail=build_tail(model, build, statuses.seen),
                )
        if build_status(build.status) != BuildStatus.BUILT:
            raise BuildFailed(
                f'the CML {name} ended "{build.status}"',
                log_tail=build_tail(model, build, statuses.seen),
            )
        return build
