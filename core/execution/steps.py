"""The steps of a rollout, each read top to bottom: what it tells people, what it asks of
the target, what it records. A step begins only while its operation is still wanted (see
`Run.step`); traffic moves only while it is still this run's and not cancelled."""

from __future__ import annotations

from core.execution.run import Brief, Run
from core.registry.mlflow import ModelVersion, Registry
from core.resources import Resources
from core.store.models import Endpoint, Operation, new_id
from core.targets.base import Built, EndpointRef, ModelSource, Started, Target
from core.versions import listed_metrics


def serves(current: Endpoint, mv: ModelVersion, resources: Resources) -> bool:
    """Whether `current` is `mv` with `resources` already: a rollout to it changes nothing."""
    return (current.model, current.version) == (mv.model, mv.version) and (
        current.resources == resources
    )


def deployment_id(run: Run, op: Operation) -> str:
    # chosen once and recorded first: a resumed operation starts (finds) the same one
    deployment = str(op.remote.get("deployment") or "")
    if not deployment:
        deployment = new_id("dep")
        run.remember(deployment=deployment)
    return deployment


def resolve(run: Run, registry: Registry, op: Operation, brief: Brief) -> ModelVersion:
    # an alias resolved once stays resolved: a resumed run must not follow it if it moved
    version = brief.version if brief.version is not None else op.remote.get("resolved")
    alias = None if version is not None else brief.alias
    what = f"v{version}" if version is not None else f"@{alias}"
    with run.step("resolve", f"resolving {brief.model} {what} in the registry") as done:
        mv = registry.resolve(brief.model, version=version, alias=alias)
        run.remember(resolved=mv.version)
        metrics = listed_metrics(mv.metrics)
        run_ref = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
        done(f"resolved {mv.label} ({run_ref}{', ' + metrics if metrics else ''})")
    return mv


def build(
    run: Run, target: Target, source: ModelSource, ep: EndpointRef, mv: ModelVersion
) -> Built:
    with run.step("build", f"building {mv.label} on {target.kind}") as done:
        built = target.build(ep, mv, source, run.target_step("build"))
        done(built.detail or f"{mv.label} built")
    return built


def start(
    run: Run,
    target: Target,
    ep: EndpointRef,
    mv: ModelVersion,
    built: Built,
    resources: Resources,
    deployment: str,
) -> Started:
    with run.step("start", f"starting {mv.label} with {resources.describe()}") as done:
        started = target.start(ep, mv, built, resources, deployment, run.target_step("start"))
        done(f"model servers up: {started.detail}")
    return started


def smoke_test(run: Run, target: Target, ep: EndpointRef, started: Started, built: Built) -> float:
    with run.step("check", "health check and smoke test on the input example") as done:
        tested = target.smoke_test(ep, started, built, run.target_step("check"))
        if built.example is None:
            done("health check passed (no input example to smoke-test with)")
        else:
            done(f"smoke test answered {short(tested.prediction)} in {tested.latency_ms:.0f} ms")
    return tested.latency_ms


def switch(
    run: Run,
    target: Target,
    ep: EndpointRef,
    mv: ModelVersion,
    resources: Resources,
    started: Started,
    current: Endpoint | None,
    was_up: bool,
) -> str:
    # traffic moves next: only while the operation is still ours, and still wanted
    run.confirm()
    run.go_on()
    with run.step("switch", "switching traffic to the new deployment") as done:
        url = target.switch(ep, started.deployment, run.target_step("switch"))
        before = (
            f"; the previous deployment (v{current.version}) drains and stops"
            if current and was_up
            else ""
        )
        done(f"{ep.name} now serves v{mv.version} with {resources.describe()}{before}")
    return url


def short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
