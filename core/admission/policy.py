"""Rules an environment sets on what may be asked of it."""

from __future__ import annotations

from core.config import Environment
from core.events import Refusal
from core.resources import Resources, format_memory


def check_limits(env: Environment, wanted: Resources) -> Refusal | None:
    """A refusal naming the first limit `wanted` goes over, or None when it fits."""
    limits = env.limits
    if wanted.cpu > limits.cpu:
        return Refusal(
            f"{wanted.cpu:g} cpu is over the limit of {env.name}: at most "
            f"{limits.cpu:g} cpu per endpoint"
        )
    if wanted.memory_mb > limits.memory_mb:
        return Refusal(
            f"{format_memory(wanted.memory_mb)} is over the limit of {env.name}: at "
            f"most {format_memory(limits.memory_mb)} per endpoint"
        )
    if wanted.replicas > limits.replicas:
        return Refusal(
            f"{wanted.replicas} replicas is over the limit of {env.name}: at most {limits.replicas}"
        )
    if wanted.gpus > limits.gpus:
        if limits.gpus == 0:
            return Refusal(f"{env.name} has no GPUs: leave out the gpu count")
        return Refusal(f"{wanted.gpus} gpu is over the limit of {env.name}: at most {limits.gpus}")
    return None
