"""How a deploy's new version meets traffic: at once at the switch, or step by step
(canary steps and shadow traffic, `core/execution/canary.py`)."""

from __future__ import annotations

from core.config import Environment
from core.events import Refusal
from core.execution.run import span


def gradual_of(
    environment: Environment, canary: list[int] | None, shadow: int | None
) -> tuple[list[int], int] | Refusal:
    """The canary steps and shadow share of a deploy in `environment`: as asked, else its
    rollout policy; a refusal where its target cannot split traffic."""
    steps = environment.rollout.steps if canary is None else canary
    copied = environment.rollout.shadow if shadow is None else shadow
    if (steps or copied) and environment.target != "local":
        return Refusal(
            f"canary and shadow traffic need the local target: in {environment.name} (Cloudera "
            "AI Workbench) a model serves one active deployment at a time, so a new version "
            "takes all of its traffic at the switch. Deploy without `--canary` and `--shadow`."
        )
    return list(steps), copied


def described(environment: Environment, steps: list[int], shadow: int, *, first: bool) -> str:
    """How traffic would move, for a plan."""
    if not steps and not shadow:
        return "all at once at the switch"
    if first:
        return "all at once: nothing serves yet to hold a canary beside"
    policy = environment.rollout
    shares = " -> ".join([*(f"{s}%" for s in steps), "100%"])
    copied = f"; {shadow}% of requests copied to it (shadow), answers compared" if shadow else ""
    how = (
        f"each step promoted by itself after {span(policy.bake_s)}"
        if policy.auto_promote
        else f"each step bakes {span(policy.bake_s)}, then an admin promotes it"
    )
    limits = policy.abort
    checks = [
        f"errors over {limits.error_rate:.0%}" if limits.error_rate is not None else "",
        f"p99 over {limits.p99_ms:.0f} ms" if limits.p99_ms is not None else "",
        f"disagreement over {limits.disagreement:.0%}" if limits.disagreement is not None else "",
    ]
    judged = ", ".join(c for c in checks if c)
    aborts = f"; aborted by itself on {judged}" if judged else ""
    return f"canary {shares}{copied}; {how}{aborts}"
