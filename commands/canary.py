"""`canary <endpoint> promote|hold|abort [in <env>] [at <N>%]`"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, shown
from commands.lock import parse_target

NAME = "canary"
SUMMARY = "promote, hold or abort the canary of a deploy under way (admins)"
USAGE = "canary <endpoint> promote|hold|abort [in <env>] [at <N>%]"
EXAMPLES = ["canary iris promote in prod", "canary iris abort in prod"]
DETAILS = """\
A deploy with `--canary 10,50` (or `--shadow 20`, or an environment's rollout policy) lets the
new version answer a share of requests, step by step, before it takes them all. Its card in
the deploy's thread shows both versions side by side, with these three as buttons:
- `promote`: the next step now (after the last, the new version takes every request);
- `hold`: stay at this step past its bake time, until promoted or aborted;
- `abort`: every request back to what serves, the new version stopped; the deploy ends failed.
`at 10%` acts only while the canary is still at 10% (what the buttons send: a late click
changes nothing)."""

Decision = Literal["promote", "hold", "abort"]
DECISIONS = ("promote", "hold", "abort")


class Canary(BaseModel):
    endpoint: str
    decision: Decision
    env: str | None = None
    at: int | None = None  # only while the canary is at this share


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def parse(text: str) -> Canary | UsageError:
    words = text.split()
    # the decision may come right after the endpoint, or after `in <env>`
    decision = next(
        (w.lower() for w in words[1:] if w.lower() in ("promote", "hold", "abort")), None
    )
    if decision is None:
        return _error("Say what to do with the canary: `promote`, `hold` or `abort`.")
    words.remove(next(w for w in words[1:] if w.lower() == decision))
    at = None
    if len(words) >= 2 and words[-2].lower() == "at":
        value = words[-1].rstrip("%")
        if not value.isdigit() or int(value) > 100:
            return _error(f"`at {shown(words[-1])}` is not a share: say e.g. `at 10%`.")
        at, words = int(value), words[:-2]
    found = parse_target(" ".join(words), USAGE, EXAMPLES[0])
    if isinstance(found, UsageError):
        return found
    endpoint, env, rest = found
    if rest:
        return _error(
            f"Unexpected `{shown(' '.join(rest))}`: a canary takes its endpoint, "
            "`promote`, `hold` or `abort`, `in <env>` and `at <N>%`."
        )
    return Canary(endpoint=endpoint, decision=decision, env=env, at=at)  # type: ignore[arg-type]


def run(cmd: Canary, ctx: Context) -> Reply:
    return ctx.core.deployer.canary(
        endpoint=cmd.endpoint,
        env=cmd.env,
        decision=cmd.decision,
        at=cmd.at,
        actor=ctx.actor,
        command=ctx.text,
    )
