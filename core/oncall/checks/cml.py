"""Readiness of one CML environment, asked of the workspace in the order a deploy needs it,
through the client the environment names (ours or `cmlapi`): the URL answers, the key is
accepted, the project is there, the runtime exists, the resources asked for fit. A check
whose premise failed is skipped rather than guessed. Then, for a project several
environments share, who shares it and any model two of them could both take for theirs."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

import httpx

from core.config import Environment
from core.errors import ConfigError, TargetError
from core.oncall.checks import Finding, env_scope
from core.targets.base import EndpointRef
from core.targets.cml.api import CMLApi
from core.targets.cml.calls import CallCounter
from core.targets.cml.client import iter_all
from core.targets.cml.clients import open_client
from core.targets.cml.errors import CMLAPIError, CMLAuthError, CMLNotFound, CMLUnreachable
from core.targets.cml.models import Project, Runtime
from core.targets.cml.naming import Neighbours, clash, model_name, same_project
from core.targets.cml.session import client_kind

# a check answers within seconds or says so: it must not sit through a deploy's retries
TIMEOUT_S = 10.0
RETRIES = 1
# project engine types that build on ML runtimes (the alternative, legacy engines, needs none)
RUNTIME_ENGINES = frozenset({"ml_runtime", "ml_runtimes", "runtime", "runtimes"})


def cml_findings(
    env: Environment, *, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    """Every finding about the CML environment `env`, its key read from `$<env.api_key_env>`."""
    scope = env_scope(env.name)
    api_key = os.environ.get(env.api_key_env, "")
    try:
        client_kind(env)
    except ConfigError as exc:
        return [
            Finding.problem(
                scope,
                "client",
                exc.message,
                "install the cmlapi package the workspace serves, or remove `client`",
            ),
            *_skipped_after(scope, "client", ("URL", "API key", "project", "runtime")),
            resources_finding(env),
        ]
    try:
        client = _client(env, api_key, transport)
    except ConfigError:
        return [
            Finding.skipped(scope, "URL", "not checked: there is no API key to call it with"),
            Finding.problem(
                scope,
                "API key",
                f"${env.api_key_env} is not set, or holds spaces",
                f"put this workspace's API v2 key in ${env.api_key_env}",
            ),
            *_skipped_after(scope, "API key", ("project", "runtime")),
            resources_finding(env),
        ]
    try:
        return [*_workspace_findings(env, scope, client), resources_finding(env)]
    finally:
        client.close()


def _client(env: Environment, api_key: str, transport: httpx.BaseTransport | None) -> CMLApi:
    """The environment's own client (see `open_client`), answering within seconds."""
    calls = CallCounter(transport)
    return open_client(env, api_key=api_key, calls=calls, timeout=TIMEOUT_S, retries=RETRIES)


def shared_project_findings(
    environments: Iterable[Environment], *, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    """For each CML project more than one environment uses: who shares it (their models are
    told apart by name, `<endpoint>@<env>`), and each model an earlier version named
    `<env>-<endpoint>` that two of them could take for theirs (both leave it alone)."""
    cml = [e for e in environments if e.target == "cml"]
    findings: list[Finding] = []
    seen: list[Environment] = []
    for env in cml:
        if any(same_project(env, other) for other in seen):
            continue
        seen.append(env)
        group = Neighbours.of(env, cml)
        if len(group.names) > 1:
            findings += _shared(env, group, transport)
    return findings


def _shared(
    env: Environment, group: Neighbours, transport: httpx.BaseTransport | None
) -> list[Finding]:
    scope = f"cml project {env.project_id}"
    names = ", ".join(group.names)
    example = model_name(EndpointRef(group.names[0], "iris"))
    shared = Finding.ok(
        scope,
        "shared",
        f"environments {names} keep their models here, each named <endpoint>@<env> "
        f"(e.g. {example}): none touches another's",
    )
    try:
        client = _client(env, os.environ.get(env.api_key_env, ""), transport)
    except ConfigError:
        return [shared, Finding.skipped(scope, "name clashes", "not checked: no usable key")]
    try:
        models = [m.name or "" for m in iter_all(client.list_models, env.project_id)]
    except TargetError as exc:
        reason = f"not checked: listing the project's models failed ({exc.message})"
        return [shared, Finding.skipped(scope, "name clashes", reason)]
    finally:
        client.close()
    clashes = [(name, group.legacy_owners(name)) for name in models]
    clashes = [(name, owners) for name, owners in clashes if len(owners) > 1]
    if not clashes:
        return [shared, Finding.ok(scope, "name clashes", f"none among {len(models)} models")]
    told = "; ".join(clash(name, owners).message for name, owners in clashes)
    return [
        shared,
        Finding.problem(
            scope,
            "name clashes",
            told,
            "rename each such model in CML after the endpoint it serves (<endpoint>@<env>); "
            "until then deploys to those endpoints are refused",
        ),
    ]


def _workspace_findings(env: Environment, scope: str, client: CMLApi) -> list[Finding]:
    findings: list[Finding] = []
    try:
        client.list_projects(page_size=1)
    except CMLUnreachable as exc:
        findings.append(
            Finding.problem(
                scope, "URL", f"{env.url}: {exc.message}", "check `url` and the network path"
            )
        )
        return findings + _skipped_after(scope, "URL", ("API key", "project", "runtime"))
    except CMLAuthError as exc:
        findings.append(Finding.ok(scope, "URL", f"{env.url} answers"))
        findings.append(_key_refused(env, scope, exc))
        return findings + _skipped_after(scope, "API key", ("project", "runtime"))
    except CMLAPIError as exc:
        findings.append(
            Finding.problem(
                scope,
                "URL",
                f"{env.url} answers, but not as CML API v2 (HTTP {exc.status_code})",
                "set `url` to the workspace's address, e.g. https://ml-xxxx.example.com",
            )
        )
        return findings + _skipped_after(scope, "URL", ("API key", "project", "runtime"))
    findings.append(Finding.ok(scope, "URL", f"{env.url} answers API v2"))
    findings.append(Finding.ok(scope, "API key", f"${env.api_key_env} accepted"))
    project = _project_finding(env, scope, client, findings)
    if project is None:
        return findings + _skipped_after(scope, "project", ("runtime",))
    findings.append(_runtime_finding(env, scope, client, project))
    return findings


def _key_refused(env: Environment, scope: str, exc: CMLAuthError) -> Finding:
    if exc.status_code == 403:
        return Finding.problem(
            scope,
            "API key",
            f"${env.api_key_env} is a key CML knows, but it may not use API v2 (HTTP 403)",
            "give the key's user access to API v2, or use a key of a user who has it",
        )
    return Finding.problem(
        scope,
        "API key",
        f"${env.api_key_env} was refused (HTTP {exc.status_code}): wrong, expired or revoked",
        f"create an API v2 key in the workspace (User Settings > API Keys) and put it in "
        f"${env.api_key_env}",
    )


def _project_finding(
    env: Environment, scope: str, client: CMLApi, findings: list[Finding]
) -> Project | None:
    try:
        project = client.get_project(env.project_id)
    except CMLNotFound:
        findings.append(
            Finding.problem(
                scope,
                "project",
                f"no project {env.project_id} in this workspace",
                "set `project_id` to the id in the project's URL or its Settings page",
            )
        )
        return None
    except CMLAuthError as exc:
        findings.append(
            Finding.problem(
                scope,
                "project",
                f"project {env.project_id} exists, but the key's user may not use it "
                f"(HTTP {exc.status_code})",
                "add the key's user to the project as a collaborator who may create models",
            )
        )
        return None
    except CMLAPIError as exc:
        findings.append(
            Finding.problem(
                scope,
                "project",
                f"reading project {env.project_id} failed: {exc.message}",
                "check `project_id`; retry when the workspace is healthy",
            )
        )
        return None
    findings.append(Finding.ok(scope, "project", f"{project.name} ({project.id}) is accessible"))
    return project


def _runtime_finding(env: Environment, scope: str, client: CMLApi, project: Project) -> Finding:
    try:
        runtimes = list(iter_all(client.list_runtimes))
    except CMLAPIError as exc:
        return Finding.problem(
            scope, "runtime", f"listing runtimes failed: {exc.message}", "retry later"
        )
    known = [r.image_identifier for r in runtimes if r.image_identifier]
    wanted = env.runtime_identifier
    uses_runtimes = (project.default_engine_type or "").lower() in RUNTIME_ENGINES
    if wanted and wanted in known:
        return Finding.ok(scope, "runtime", f"{wanted} is available")
    if wanted:
        close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else _some(runtimes)
        return Finding.problem(
            scope,
            "runtime",
            f"{wanted} is not among the workspace's {len(known)} runtimes",
            f"set `runtime_identifier` to one ListRuntimes returns; {hint}",
        )
    if uses_runtimes:
        return Finding.problem(
            scope,
            "runtime",
            f"project {project.name} uses ML runtimes, and no `runtime_identifier` is set",
            f"set `runtime_identifier`; {_some(runtimes)}",
        )
    return Finding.ok(scope, "runtime", "none needed: the project uses legacy engines")


def _some(runtimes: list[Runtime]) -> str:
    """A few runtimes worth suggesting: enabled Python ones, newest first."""
    usable = [
        r
        for r in runtimes
        if r.image_identifier
        and (r.status or "ENABLED").upper() == "ENABLED"
        and "python" in (r.kernel or "").lower()
    ]
    usable.sort(key=lambda r: (r.full_version or "", r.kernel or ""), reverse=True)
    picks = [r.image_identifier for r in usable[:3] if r.image_identifier]
    return f"for example: {', '.join(picks)}" if picks else "the workspace lists none"


def resources_finding(env: Environment) -> Finding:
    """The default resources must fit the environment's limits; API v2 tells no workspace
    maximum for one deployment, so the limits are all there is to hold them to."""
    scope, d, lim = env_scope(env.name), env.default, env.limits
    over = [
        f"{what} {have:g} > {most:g}"
        for what, have, most in (
            ("cpu", d.cpu, lim.cpu),
            ("memory_mb", d.memory_mb, lim.memory_mb),
            ("replicas", d.replicas, lim.replicas),
            ("gpus", d.gpus, lim.gpus),
        )
        if have > most
    ]
    if over:
        return Finding.problem(
            scope,
            "resources",
            f"the default asks more than the limits allow: {', '.join(over)}",
            "lower `default` or raise `limits` of this environment",
        )
    return Finding.ok(
        scope,
        "resources",
        f"default {d.describe()} within limits of {lim.cpu:g} cpu, {lim.memory_mb} MB, "
        f"{lim.replicas} replicas, {lim.gpus} gpu",
    )


def _skipped_after(scope: str, failed: str, checks: tuple[str, ...]) -> list[Finding]:
    return [Finding.skipped(scope, check, f"not checked: {failed} failed") for check in checks]
