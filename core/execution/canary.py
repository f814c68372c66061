"""A canary: a new version meets live traffic step by step before the switch.

Once the new deployment passed its health check and smoke test, the endpoint's requests are
split (`Target.split`): the new version answers `canary` percent of them, step by step (10%,
then 50%, …), and gets a copy of `shadow` percent of the others, its answers compared with
the serving version's. At each step the run looks every `canary_look_s`: it shows both
versions side by side (a `CARD` event, which fronts keep current in place), aborts by itself
when the new version passes one of the environment's thresholds, and acts on what an admin
decided (`/canary <endpoint> promote|hold|abort`, the operation's gate). A step ends when it
is promoted, or after `bake_s` when the policy promotes by itself; after the last one the
rollout switches as any other. An abort is a cancel: the new deployment is discarded and
every request goes back to what serves.

Where it is (the share and since when) is recorded in the operation: a bot process taking it
over splits the same way again (which changes nothing on the endpoint, the counts go on) and
bakes what is left of the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.clock import Clock
from core.config import Rollout, Thresholds
from core.errors import Cancelled, HandedOver
from core.execution.run import Brief, Run, span
from core.store.models import CANARY_STEP, Endpoint, Operation, aware
from core.targets.base import Comparison, EndpointRef, Side, Started, Target
from core.versions import ModelVersion

STEP = CANARY_STEP
PROMOTE, HOLD, ABORT = "promote", "hold", "abort"
DECISIONS = (PROMOTE, HOLD, ABORT)


class Aborted(Cancelled):
    """A canary stopped, by an admin or by itself (`by_itself`: on-call hears of it too):
    what it started is discarded."""

    def __init__(self, message: str, *, by_itself: bool = False) -> None:
        super().__init__(message)
        self.by_itself = by_itself


def shares(brief: Brief) -> list[int]:
    """The shares of a canary's steps: only shadow traffic is one step at 0%."""
    return list(brief.canary) or [0]


@dataclass(frozen=True)
class Verdict:
    """Why a candidate fails its canary ("" when it does not)."""

    why: str = ""


def judge(c: Comparison, limits: Thresholds, label: str) -> Verdict:
    """Whether what the candidate answered passes one of `limits`, once it answered enough."""
    cand, copied = c.candidate, c.shadowed
    requests = (cand.requests if cand else 0) + copied.requests
    errors = (cand.errors if cand else 0) + copied.errors
    if requests < limits.min_requests:
        return Verdict()
    if limits.error_rate is not None and errors / requests > limits.error_rate:
        return Verdict(
            f"{label} failed {errors} of {requests} requests ({errors / requests:.0%}, more than "
            f"the {limits.error_rate:.0%} allowed)"
        )
    p99 = max(
        (p for p in (cand.p99_ms if cand else None, copied.p99_ms) if p is not None), default=None
    )
    if limits.p99_ms is not None and p99 is not None and p99 > limits.p99_ms:
        return Verdict(
            f"{label} answered in {p99:.0f} ms at p99 (more than {limits.p99_ms:.0f} ms)"
        )
    agreement = copied.agreement
    if (
        limits.disagreement is not None
        and agreement is not None
        and copied.compared >= limits.min_requests
        and 1 - agreement > limits.disagreement
    ):
        return Verdict(
            f"{label} predicted otherwise than what serves for {1 - agreement:.0%} of "
            f"{copied.compared} shadowed requests (more than {limits.disagreement:.0%} allowed)"
        )
    return Verdict()


class Canary:
    """One rollout's canary, run by the process that holds its operation."""

    def __init__(
        self,
        *,
        run: Run,
        op: Operation,
        brief: Brief,
        target: Target,
        ep: EndpointRef,
        mv: ModelVersion,
        started: Started,
        serving: int | None,
        policy: Rollout,
        clock: Clock,
        look_s: float,
        pause: Callable[[float], None],
        deadline: datetime,
        metrics: dict[str, float],
        abort: Callable[[str, int], None],
    ) -> None:
        self.run = run
        self.op = op
        self.brief = brief
        self.target = target
        self.ep = ep
        self.mv = mv
        self.started = started
        self.serving = serving
        self.policy = policy
        self.clock = clock
        self.look_s = look_s
        self.pause = pause
        self.deadline = deadline
        self.metrics = metrics  # the registry's metrics of what serves, for the deltas
        # the bot's own `/canary <endpoint> abort` (why, at which share): admitted and audited
        # as the command it is, before the run stops
        self.abort = abort

    def carry_out(self) -> None:
        """Every step, from where the operation got to; returns when the last one is
        promoted (the switch comes next), raises `Aborted` when it is not to be."""
        steps = shares(self.brief)
        at = self.run.recall("canary_at")
        first = steps.index(at) if isinstance(at, int) and at in steps else 0
        for index in range(first, len(steps)):
            self._step(index, steps)

    # -- one step ---------------------------------------------------------------------------
    def _step(self, index: int, steps: list[int]) -> None:
        share = steps[index]
        since = self._since(share)
        new = f"v{self.mv.version}"
        doing = self._doing(share, index, steps)
        with self.run.step(STEP, doing) as done:
            self.target.split(
                self.ep,
                self.started.deployment,
                canary=share,
                shadow=self.brief.shadow,
                tolerance=self.policy.tolerance,
                step=self.run.target_step(STEP),
            )
            seen: dict[str, Any] = {}
            while True:
                compared = self.target.compare(self.ep, self.started.deployment)
                seen = self._record(compared, seen)
                baked = max(0.0, (self.clock.now() - since).total_seconds())
                gate = self._gate(share)
                held = gate is not None and gate["decision"] == HOLD
                self._show(compared, share, index, steps, baked, held, gate)
                verdict = judge(compared, self.policy.abort, new)
                if verdict.why:
                    self._by_itself(share, verdict.why)
                if gate is not None and gate["decision"] == ABORT:
                    raise Aborted(f"aborted by {gate['by']} at {share}%")
                if gate is not None and gate["decision"] == PROMOTE:
                    done(f"{share}% promoted by {gate['by']} after {span(baked)}")
                    break
                if not held and self.policy.auto_promote and baked >= self.policy.bake_s:
                    done(f"{share}% baked {span(baked)}: promoted by itself")
                    break
                if self.clock.now() >= self.deadline:
                    self._by_itself(
                        share,
                        "no one promoted it before the operation's time ran out "
                        "(operation_timeout_s)",
                    )
                self.run.go_on()  # a /cancel stops it as any step
                self.run.confirm()
                if self.run.leases.handing_over:
                    raise HandedOver(f"operation {self.op.id} was left in its canary")
                wait = self.look_s
                if self.policy.auto_promote and not held:  # promoted at its bake time, not after
                    wait = min(wait, max(0.05, self.policy.bake_s - baked))
                self.pause(wait)

    def _by_itself(self, share: int, why: str) -> None:
        """Abort as the bot's own command (audited as such); the run stops whatever became
        of it: a failing candidate never goes on meeting traffic."""
        self.abort(why, share)
        raise Aborted(f"aborted by itself at {share}%: {why}", by_itself=True)

    def _record(self, c: Comparison, before: dict[str, Any]) -> dict[str, Any]:
        """What the new version answered so far, recorded when it changed (for `/metrics`,
        which reads the database)."""
        cand = c.candidate
        seen = {
            "requests": (cand.requests if cand else 0),
            "errors": (cand.errors if cand else 0),
            "shadowed": c.shadowed.requests,
            "compared": c.shadowed.compared,
            "agreed": c.shadowed.agreed,
        }
        if seen != before:
            self.run.remember(canary_seen=seen)
        return seen

    def _since(self, share: int) -> datetime:
        """When the step at `share` began: recorded once, so a resumed one bakes only what
        is left."""
        recorded = self.run.recall("canary_since")
        if self.run.recall("canary_at") == share and isinstance(recorded, str):
            return aware(datetime.fromisoformat(recorded))
        now = self.clock.now()
        self.run.remember(canary_at=share, canary_since=now.isoformat())
        return now

    def _gate(self, share: int) -> dict[str, Any] | None:
        """What an admin decided at this step (a decision taken at another is stale)."""
        op = self.run.operations.get(self.op.id)
        gate = op.gate if op is not None else None
        if not isinstance(gate, dict) or gate.get("at") != share:
            return None
        return gate if gate.get("decision") in DECISIONS else None

    def _doing(self, share: int, index: int, steps: list[int]) -> str:
        new, old = f"v{self.mv.version}", f"v{self.serving}" if self.serving else "what serves"
        copied = f", {self.brief.shadow}% of the rest copied to it" if self.brief.shadow else ""
        if share:
            what = f"{new} answers {share}% of requests ({old} the rest){copied}"
        else:
            what = f"{old} answers every request; {self.brief.shadow}% copied to {new}"
        how = (
            f"promoted by itself after {span(self.policy.bake_s)}"
            if self.policy.auto_promote
            else f"baking {span(self.policy.bake_s)}, then an admin promotes it"
        )
        return f"canary step {index + 1} of {len(steps)}: {what}; {how}"

    def _show(
        self,
        c: Comparison,
        share: int,
        index: int,
        steps: list[int],
        baked: float,
        held: bool,
        gate: dict[str, Any] | None,
    ) -> None:
        following = steps[index + 1] if index + 1 < len(steps) else 100
        card: dict[str, Any] = {
            "env": self.ep.env,
            "endpoint": self.ep.name,
            "model": self.mv.model,
            "version": self.mv.version,
            "serving_version": self.serving,
            "share": share,
            "shadow": self.brief.shadow,
            "step": index + 1,
            "steps": len(steps),
            "next": following,
            "baked_s": round(baked),
            "bake_s": self.policy.bake_s,
            "auto_promote": self.policy.auto_promote,
            "held_by": str(gate["by"]) if held and gate is not None else "",
            "known": c.known,
            "detail": c.detail,
            "sides": [_side(c.serving), _side(c.candidate)],
            "shadowed": {
                "requests": c.shadowed.requests,
                "errors": c.shadowed.errors,
                "compared": c.shadowed.compared,
                "agreement": c.shadowed.agreement,
                "p50_ms": c.shadowed.p50_ms,
                "p99_ms": c.shadowed.p99_ms,
            },
            "metrics": _deltas(self.metrics, self.mv.metrics),
        }
        self.run.card(f"{self.mv.label}: canary at {share}%", card)


def _side(side: Side | None) -> dict[str, Any] | None:
    if side is None:
        return None
    return {
        "version": side.version,
        "requests": side.requests,
        "errors": side.errors,
        "error_rate": side.error_rate,
        "p50_ms": side.p50_ms,
        "p99_ms": side.p99_ms,
    }


def _deltas(before: dict[str, float], now: dict[str, float]) -> list[dict[str, Any]]:
    """The registry metrics both versions logged: the new one's value and its change."""
    shared = sorted(set(before) & set(now))[:6]
    return [{"name": k, "value": now[k], "delta": now[k] - before[k]} for k in shared]


def none_held(op: Operation, mv: ModelVersion, current: Endpoint | None) -> str:
    """Why a deploy asked for with a canary switches at once: nothing serves beside which to
    hold one (told once: "" when resumed), or what served is down, the canary it held
    included."""
    new = f"v{mv.version}"
    if current is None:
        if op.attempts > 1:
            return ""
        return (
            f"no canary: nothing serves {op.endpoint} in {op.env} yet to hold one beside, so "
            f"{new} takes every request at the switch"
        )
    old = f"{current.model} v{current.version}"
    share = op.canary_share  # as the process that ran it before left it
    if share is None:
        why = (
            f"no canary: v{current.version}, which served {op.endpoint} in {op.env}, is "
            "down: no requests to share with it"
        )
    else:
        took = (
            f"beside which {new} answered {share}% of the requests"
            if share
            else f"whose requests {new} got copies of"
        )
        why = (
            f"no canary any more: {old}, {took}, is down (it stopped with the bot process "
            "running the canary)"
        )
    return f"{why}, so {new} takes every request at the switch"


def what_it_took(
    op: Operation, remote: dict[str, Any], share: int, current: Endpoint | None
) -> tuple[str, str, str]:
    """The new version, what serves, and what the new one took of its traffic in a canary
    left at `share`, for the final word of an operation that is not to go on."""
    resolved = remote.get("resolved")
    new = f"v{resolved}" if isinstance(resolved, int) else "the new version"
    old = f"v{current.version}" if current is not None else "what serves"
    shadow = op.brief.get("shadow")
    took = (
        f"{new} answered {share}% of the requests beside {old}"
        if share
        else f"{new} got a copy of {shadow if isinstance(shadow, int) else 'some'}% of the "
        f"requests {old} answered"
    )
    return new, old, took
