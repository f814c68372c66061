"""What the CML target tells people while it waits, and what it leaves them when a build
fails (API v2 offers no build log, so the tail is what the API does say)."""

from __future__ import annotations

from core.targets.cml.models import Model, ModelBuild, ModelDeployment
from core.versions import ModelVersion


def short(ident: str | None) -> str:
    """The first block of a CML id, as people read ids in a thread."""
    return (ident or "?").split("-")[0][:8]


def build_comment(mv: ModelVersion) -> str:
    """The comment on a build: which MLflow version it is, readable in the CML UI too."""
    return f"{mv.model} v{mv.version}"


def parse_build_comment(build: ModelBuild) -> tuple[str, int | None]:
    model, _, version = (build.comment or "").rpartition(" v")
    return (model, int(version)) if model and version.isdigit() else ("", None)


def build_tail(model: Model, build: ModelBuild, seen: list[str]) -> str:
    lines = [
        f"CML build {build.id} of model {model.name} ({model.id})",
        f"registered model version: {build.registered_model_version_id or '?'}",
        f"runtime: {build.runtime_identifier or 'the project default'}",
        f"statuses seen: {' -> '.join(seen)}",
        f"created {build.created_at or '?'}, last change {build.updated_at or '?'}",
        f"the build log is in the workspace: Model Deployments > {model.name} > Builds",
    ]
    return "\n".join(lines)


def deployment_detail(dep: ModelDeployment) -> str:
    replicas = dep.replicas or 1
    gpus = f", {dep.nvidia_gpu} GPU" if dep.nvidia_gpu else ""
    return (
        f"CML deployment {short(dep.id)} {dep.status}: {replicas} replica"
        f"{'s' if replicas != 1 else ''} of {dep.cpu or 0:g} vCPU, {dep.memory or 0:g} GB{gpus}"
    )


def no_traffic(model: str) -> str:
    """What `status` says of a CML endpoint's traffic: API v2 has nothing to count it from
    (no metrics route for models, builds or deployments; its usage view lists only the CPU,
    memory and status of workloads)."""
    return (
        "CML API v2 reports no request counts, errors or latency for models: see "
        f"Model Deployments > {model} > Monitoring in the workspace"
    )


def no_split(model: str) -> str:
    """Why a CML endpoint takes no canary or shadow traffic."""
    return (
        f"canary and shadow traffic need the local target: on Cloudera AI Workbench, {model} "
        "serves one active deployment at a time, so a new version takes all of its traffic at "
        "the switch"
    )
