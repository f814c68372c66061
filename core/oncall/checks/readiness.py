"""Every readiness check in the order a deploy needs them: each environment, the registry,
whatever the front adds (Slack), then the state database."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from core.config import Environment, Settings
from core.oncall.checks import Finding, Report, env_scope
from core.oncall.checks.cml import cml_findings, resources_finding, shared_project_findings
from core.oncall.checks.events import registry_events_finding
from core.oncall.checks.stores import database_finding, registry_finding
from core.registry.mlflow import Registry


def environment_findings(
    env: Environment, *, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    if env.target == "cml":
        return cml_findings(env, transport=transport)
    low, high = env.port_range
    return [
        Finding.ok(env_scope(env.name), "target", f"local: served on loopback ports {low}-{high}"),
        resources_finding(env),
    ]


def readiness(
    settings: Settings, *, front: Iterable[Finding] = (), registry: Registry | None = None
) -> Report:
    """Runs every check; `front` are the findings of the front in use (Slack), placed before
    the database's; `registry`, the process's own when it has one open. Never raises for
    what it checks: a failure is a finding."""
    findings: list[Finding] = []
    for env in settings.environments:
        findings += environment_findings(env)
    findings += shared_project_findings(settings.environments)
    findings.append(registry_finding(settings, registry))
    findings.append(registry_events_finding(settings))
    findings += front
    findings.append(database_finding(settings))
    return Report(findings)
