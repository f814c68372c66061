"""What /status shows: every recorded endpoint with its live health, its traffic over the last
five minutes, and what is under way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from core.admission.roles import Actor, Role, role_in
from core.config import Settings
from core.events import EndpointStatus, Refusal
from core.marks import person
from core.oncall.checks import Finding, env_scope
from core.oncall.checks.cache import Checked
from core.store.models import Endpoint, Operation, aware
from core.store.repos import Repositories
from core.targets.base import EndpointRef, Health, Target, Traffic

TRAFFIC_WINDOW_S = 300.0


def endpoint_statuses(
    repos: Repositories, targets: dict[str, Target], *, env: str | None, endpoint: str | None
) -> list[EndpointStatus] | Refusal:
    """Every recorded endpoint (of `env`, or of all environments; only `endpoint`, when
    given) with its live health and traffic; a refusal naming the known ones for an unknown
    endpoint."""
    rows = repos.endpoints.every(env)
    if endpoint is not None:
        rows = [r for r in rows if r.name == endpoint]
        if not rows:
            where = f" in {env}" if env else ""
            known = ", ".join(sorted({r.name for r in repos.endpoints.every(env)})) or "none"
            return Refusal(f"there is no endpoint `{endpoint}`{where} (endpoints: {known})")

    busy = {(op.env, op.endpoint): op for op in repos.operations.running()}

    # every endpoint at once: on a remote target each check is network round trips
    def look(row: Endpoint) -> tuple[Health, Traffic, str]:
        target, ref = targets[row.env], EndpointRef(row.env, row.name)
        op = busy.get((row.env, row.name))
        return (
            target.health(ref),
            target.traffic(ref, TRAFFIC_WINDOW_S),
            _underway(op, target, ref),
        )

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(rows)))) as pool:
        seen = list(pool.map(look, rows))
    result = []
    for row, (health, traffic, underway) in zip(rows, seen, strict=True):
        result.append(
            EndpointStatus(
                env=row.env,
                name=row.name,
                model=row.model,
                version=row.version,
                resources=row.resources.describe(replicas=False),
                replicas=row.replicas,
                up=health.up,
                since=aware(row.since),
                url=row.url,
                target=row.target,
                detail=health.detail,
                underway=underway,
                traffic=traffic,
            )
        )
    return result


def _underway(op: Operation | None, target: Target, ref: EndpointRef) -> str:
    if op is None:
        return ""
    at = f"at {op.step}" if op.step else op.state
    again = f" (attempt {op.attempts})" if op.attempts > 1 else ""
    share = op.canary_share
    if share is not None:
        at = f"in its canary: {canary_text(op, share, target, ref)}"
    return f"{op.kind} by {person(op.requested_by)}, {at}{again}"


def canary_text(op: Operation, share: int, target: Target, ref: EndpointRef) -> str:
    """Where a canary stands: `v3 answers 10% of requests, 20% copied to it, agreement
    98.4% of 250`."""
    brief = op.brief or {}
    version = (op.remote or {}).get("resolved") or brief.get("version")
    shadow = int(brief.get("shadow") or 0)
    text = f"v{version} answers {share}% of requests"
    if shadow:
        text += f", {shadow}% of the rest copied to it"
    deployment = str((op.remote or {}).get("deployment") or "")
    seen = target.compare(ref, deployment) if deployment else None
    if seen is not None and seen.known:
        agreement = seen.shadowed.agreement
        if agreement is not None:
            text += f", agreement {agreement:.1%} of {seen.shadowed.compared}"
        if seen.candidate is not None and seen.candidate.requests:
            rate = seen.candidate.error_rate or 0.0
            text += f", {rate:.1%} errors in {seen.candidate.requests}"
    return text


@dataclass(frozen=True)
class Problems:
    """What the last readiness check found wrong that an admin asking /status may fix, and
    when it checked. Every text was scrubbed when the check made it."""

    findings: tuple[Finding, ...]
    at: datetime


def admin_problems(
    settings: Settings, actor: Actor, checked: Checked | None, *, env: str | None = None
) -> Problems | None:
    """The problems of `checked` for `actor`: those of the environments they administer (of
    `env` alone, when asked about one) and of what all environments share (registry, state
    database). None for someone who administers nothing, before the first check, and when
    nothing they could fix is wrong."""
    if checked is None:
        return None
    theirs = {
        env_scope(e.name)
        for e in settings.environments
        if role_in(e, actor) is Role.ADMIN and env in (None, e.name)
    }
    if not theirs:
        return None
    scopes = {env_scope(e.name) for e in settings.environments}
    found = tuple(f for f in checked.report.problems if f.scope in theirs or f.scope not in scopes)
    return Problems(findings=found, at=checked.at) if found else None
