"""Plans: what a deploy, scale, rollback or stop would do and every refusal it would meet
(`PlanReport`, which each front renders), and how its parts are said. The `Planner`
(core/admission/planner.py) makes them, changing nothing."""

from __future__ import annotations

from dataclasses import dataclass

from core.admission.gates import Requirement
from core.admission.intents import Intent
from core.admission.roles import Action, Role
from core.events import Refusal
from core.predictions import Measured
from core.store.models import Endpoint, Operation
from core.versions import ModelVersion, serving_tag

PLANNED = "planned"  # the audit outcome of every plan
VERB = {
    Action.DEPLOY: "deploy",
    Action.SCALE: "scale",
    Action.ROLLBACK: "roll back",
    Action.STOP: "stop",
}


@dataclass(frozen=True)
class MetricDelta:
    """One metric both versions logged: the one that would serve against the one serving."""

    name: str
    candidate: float
    serving: float

    @property
    def delta(self) -> float:
        return self.candidate - self.serving

    def describe(self) -> str:
        return (
            f"{self.name} {_num(self.candidate)} vs {_num(self.serving)}, {_num(self.delta, '+')}"
        )


@dataclass(frozen=True)
class PlanReport:
    """What a command would do; `ok` when it would go ahead. Every text is for people."""

    action: str
    env: str
    endpoint: str
    summary: str  # what it would do, in one line
    requirements: tuple[Requirement, ...]
    version: str = ""  # the version that would serve, and its run
    serving: str = ""  # what serves now
    metrics: tuple[MetricDelta, ...] = ()
    resources: str = ""  # before -> after
    build: str = ""
    approvers: tuple[str, ...] = ()  # the admins of the environment, as settings name them
    route: str = ""  # whether the asker may do it, or how to ask for it
    stops: str = ""  # a stop: what would stop
    underway: tuple[str, ...] = ()  # operations on the endpoint now
    registry: str = ""  # what it would write back to the registry
    traffic: str = ""  # a deploy: how the new version meets traffic (at once, or a canary)
    diff: str = ""  # what the new version is scored on beside what serves, and what was found

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.requirements)

    @property
    def verdict(self) -> str:
        refused = next((c for c in self.requirements if not c.ok), None)
        if refused is None:
            return "it would go ahead"
        return f"it would be refused: {refused.text}"

    @property
    def sentence(self) -> str:
        """The verdict as a sentence of its own."""
        text = self.verdict[0].upper() + self.verdict[1:]
        return text if text.endswith((".", "!", "?")) else text + "."

    def rows(self) -> list[tuple[str, str]]:
        """(what, found) for each part of the plan that applies, in reading order."""
        rows = [
            ("version", self.version),
            ("serving now", self.serving),
            ("metrics", "; ".join(m.describe() for m in self.metrics)),
            ("resources", self.resources),
            ("build", self.build),
            ("traffic", self.traffic),
            ("prediction diff", self.diff),
            ("would stop", self.stops),
            ("registry", self.registry),
            ("approval", self.route),
            ("admins", ", ".join(self.approvers)),
            ("under way", "; ".join(self.underway)),
        ]
        return [(k, v) for k, v in rows if v]

    @property
    def text(self) -> str:
        lines = [f"Plan: {self.summary} (nothing changes until the command is run)"]
        lines += [f"{k}: {v}" for k, v in self.rows()]
        lines += [f"{'ok' if c.ok else 'REFUSED'} {c.name}: {c.text}" for c in self.requirements]
        lines.append(self.sentence)
        return "\n".join(lines)


def a_role(role: Role) -> str:
    return {Role.ADMIN: "an admin", Role.DEVELOPER: "a developer", Role.VIEWER: "a viewer"}[role]


def role_name(role: Role) -> str:
    return {Role.ADMIN: "admin", Role.DEVELOPER: "developer", Role.VIEWER: "viewer"}[role]


def found_text(intent: Intent) -> str:
    current = intent.current
    if intent.action is Action.DEPLOY:
        return f"{intent.model} is a registered model"
    if intent.action is Action.ROLLBACK and current is not None:
        return f"{intent.endpoint} served v{intent.version} before v{current.version}"
    return f"{intent.endpoint} serves {intent.model} v{intent.version} in {intent.environment.name}"


def summary_text(intent: Intent, mv: ModelVersion | None, *, live: bool) -> str:
    env, name, current = intent.environment.name, intent.endpoint, intent.current
    if intent.action is Action.ROLLBACK and current is not None:
        return f"roll {name} in {env} back from v{current.version} to v{intent.version}"
    if intent.action is Action.SCALE:
        return f"scale {name} in {env} to {intent.resources.describe()}"
    what = intent.what
    if mv is not None:
        what = f"@{intent.alias} (now v{mv.version})" if intent.alias else f"v{mv.version}"
    line = f"deploy {intent.model} {what} to {env}"
    if live:
        return f"{line}: it serves so already, the deploy would change nothing"
    return line + (f", in place of v{current.version}" if current else "")


def registry_text(intent: Intent, mv: ModelVersion | None, *, live: bool) -> str:
    """What the command would write back to the registry, when its environment names an
    alias: "" otherwise, and for what changes no version."""
    alias, env, current = intent.environment.alias, intent.environment.name, intent.current
    tag = serving_tag(env)
    if alias is None or intent.action is Action.SCALE or live:
        return ""
    if intent.action is Action.STOP:
        if current is None:
            return ""
        return (
            f"then takes {tag} off {current.model} v{current.version}, and @{alias} "
            "while it names that version"
        )
    if mv is None:
        return ""
    untag = (
        f", taking it off v{current.version}"
        if current is not None and (current.model, current.version) != (mv.model, mv.version)
        else ""
    )
    return f"then moves @{alias} to v{mv.version} and tags it {tag}{untag}"


def version_text(mv: ModelVersion) -> str:
    run = f"run {mv.run_id[:8]}" if mv.run_id else "no run"
    if mv.run_name:
        run += f" ({mv.run_name})"
    return f"{mv.label}, {run}, registered {mv.created_at:%Y-%m-%d %H:%M} UTC"


def deltas(
    mv: ModelVersion | None, serving: ModelVersion | Refusal | None
) -> tuple[MetricDelta, ...]:
    if mv is None or not isinstance(serving, ModelVersion):
        return ()
    shared = sorted(set(mv.metrics) & set(serving.metrics))
    return tuple(MetricDelta(k, mv.metrics[k], serving.metrics[k]) for k in shared)


def resources_text(intent: Intent) -> str:
    after = intent.resources.describe()
    current = intent.current
    if intent.action is Action.STOP:
        return f"{after} -> nothing"
    if current is None:
        return f"none -> {after} (the defaults of {intent.environment.name})"
    before = current.resources.describe()
    return f"{before} (unchanged)" if before == after else f"{before} -> {after}"


def _num(value: float, sign: str = "") -> str:
    return f"{value:{sign}.3f}" if abs(value) < 1000 else f"{value:{sign}.4g}"


def diff_text(mv: ModelVersion, current: Endpoint, dataset: str, unread: str, measured: str) -> str:
    """What the rollout scores `mv` on beside what serves before the switch: the input
    example, and the run's evaluation dataset (`dataset`, described) unless `unread` says why
    not; and what an earlier rollout found (`measured`, "" when none measured it)."""
    text = (
        f"before the switch, v{mv.version} is scored beside v{current.version} on the input "
        "example (when the model has one)"
    )
    text += f"; not on an evaluation dataset: {unread}" if unread else f" and the {dataset}"
    return text + (f"; {measured}" if measured else "")


def measured_text(op: Operation, measured: Measured) -> str:
    when = (op.finished_at or op.created_at).strftime("%Y-%m-%d %H:%M UTC")
    return f"measured {when} by the {op.kind} in {op.env} ({op.id}): {measured.said()}"
