"""`scale <endpoint> <cpu>cpu <memory>gb|mb [<n> replicas] [<n>gpu] [in <env>] [--dry-run]`"""

from __future__ import annotations

import re

from pydantic import BaseModel

from commands.base import Context, Reply, UsageError, check_name, dry_run, shown, tokens

NAME = "scale"
SUMMARY = "change the resources of an endpoint without downtime"
USAGE = "scale <endpoint> <cpu>cpu <memory>gb|mb [<n> replicas] [<n>gpu] [in <env>] [--dry-run]"
EXAMPLES = [
    "scale iris 2cpu 1gb",
    "scale iris 4 cpu 8GB 2 replicas in prod",
    "scale iris x3",
    "scale iris 2 replicas --dry-run",
]
DETAILS = """\
Give any of cpu, memory and replicas; what you leave out stays as it is. Accepted spellings:
  cpu       4cpu, 4 cpu, 4 cpus, 0.5vcpu, 2 cores
  memory    8gb, 8GB, 8 g, 1.5gb, 512mb, 512 MB, 512m (GiB and MiB: 1gb = 1024mb)
  replicas  2 replicas, 1 replica, x2
  gpus      1gpu, 2 gpus (only where the environment has GPUs)
The same version starts with the new resources beside the old deployment, takes the traffic
once healthy, and the old one stops: the endpoint URL stays the same.
Values over the environment's limits are refused and name the limit. `--dry-run` (or
`/plan scale …`) shows the resources before and after and what would stop it, changing
nothing."""

_UNITS = {
    "cpu": "cpu",
    "cpus": "cpu",
    "vcpu": "cpu",
    "vcpus": "cpu",
    "core": "cpu",
    "cores": "cpu",
    "gb": "gb",
    "g": "gb",
    "gib": "gb",
    "gi": "gb",
    "mb": "mb",
    "m": "mb",
    "mib": "mb",
    "mi": "mb",
    "replica": "replicas",
    "replicas": "replicas",
    "gpu": "gpus",
    "gpus": "gpus",
}
_NUMBER = r"-?\d{1,9}(?:\.\d{1,6})?"
_JOINED = re.compile(rf"^({_NUMBER})([A-Za-z]+)$")
_BARE = re.compile(rf"^{_NUMBER}$")
_TIMES = re.compile(r"^[xX](\d{1,9})$")


class Scale(BaseModel):
    endpoint: str
    cpu: float | None = None
    memory_mb: int | None = None
    replicas: int | None = None
    gpus: int | None = None
    env: str | None = None
    dry_run: bool = False


def _error(problem: str) -> UsageError:
    return UsageError(problem, USAGE, EXAMPLES[0])


def _amounts(words: list[str]) -> list[tuple[str, str, str]] | UsageError:
    """(raw text, number, unit kind) for each amount; an error for anything else."""
    found: list[tuple[str, str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if match := _JOINED.match(word):
            number, unit = match.groups()
            i += 1
        elif _BARE.match(word):
            if i + 1 >= len(words) or words[i + 1].lower() not in _UNITS:
                return _error(
                    f"`{shown(word)}` needs a unit: {word}cpu, {word}gb, {word}mb or "
                    f"{word} replicas."
                )
            number, unit = word, words[i + 1]
            word = f"{word} {unit}"
            i += 2
        elif match := _TIMES.match(word):
            number, unit = match.group(1), "replicas"
            i += 1
        else:
            return _error(
                f"Unexpected `{shown(word)}`: expected an amount such as 2cpu, 4gb, "
                "512mb or 2 replicas."
            )
        kind = _UNITS.get(unit.lower())
        if kind is None:
            return _error(
                f"`{shown(word)}` has an unknown unit `{shown(unit)}`: use cpu, gb, mb, "
                "replicas or gpu."
            )
        found.append((word, number, kind))
    return found


def parse(text: str) -> Scale | UsageError:
    text, dry = dry_run(text)
    words = tokens(text)
    if not words:
        return _error("Say which endpoint to scale and to what.")
    endpoint, rest = words[0], words[1:]
    if bad := check_name(endpoint, "endpoint name", USAGE, EXAMPLES[0]):
        return bad
    env = None
    lowered = [w.lower() for w in rest]
    if "in" in lowered:
        at = lowered.index("in")
        if at + 1 >= len(rest):
            return _error("Say which environment after `in`, e.g. `in prod`.")
        env = rest[at + 1]
        if bad := check_name(env, "environment name", USAGE, EXAMPLES[1]):
            return bad
        if at + 2 < len(rest):
            return _error(f"Unexpected `{shown(' '.join(rest[at + 2 :]))}` after the environment.")
        rest = rest[:at]
    if not rest:
        return _error(f"Say what to give `{endpoint}`: cpu, memory and/or replicas.")
    amounts = _amounts(rest)
    if isinstance(amounts, UsageError):
        return amounts
    values: dict[str, float] = {}
    for raw, number, kind in amounts:
        key = "memory" if kind in ("gb", "mb") else kind
        if key in values:
            return _error(f"{key} is given twice (`{shown(raw)}`): give each once.")
        value = float(number)
        if kind == "gpus":
            if value < 0 or not value.is_integer():
                return _error(f"`{shown(raw)}`: the gpu count must be a whole number, 0 or more.")
        elif value <= 0:
            return _error(f"`{shown(raw)}`: {key} must be more than 0.")
        if kind == "replicas" and not value.is_integer():
            return _error(f"`{shown(raw)}`: replicas must be a whole number.")
        values[key] = value * 1024 if kind == "gb" else value
    memory = values.get("memory")
    if memory is not None and round(memory) < 1:
        return _error("memory must be at least 1mb.")
    return Scale(
        endpoint=endpoint,
        env=env,
        cpu=values.get("cpu"),
        memory_mb=round(memory) if memory is not None else None,
        replicas=int(values["replicas"]) if "replicas" in values else None,
        gpus=int(values["gpus"]) if "gpus" in values else None,
        dry_run=dry,
    )


def run(cmd: Scale, ctx: Context) -> Reply:
    if cmd.dry_run:
        return plan(cmd, ctx)
    return ctx.core.deployer.scale(
        endpoint=cmd.endpoint,
        cpu=cmd.cpu,
        memory_mb=cmd.memory_mb,
        replicas=cmd.replicas,
        gpus=cmd.gpus,
        env=cmd.env,
        actor=ctx.actor,
        command=ctx.text,
        reporter=ctx.reporter,
    )


def plan(cmd: Scale, ctx: Context) -> Reply:
    """What the scale would do, changing nothing."""
    return ctx.core.planner.scale(
        endpoint=cmd.endpoint,
        cpu=cmd.cpu,
        memory_mb=cmd.memory_mb,
        replicas=cmd.replicas,
        gpus=cmd.gpus,
        env=cmd.env,
        actor=ctx.actor,
        command=ctx.text,
    )
