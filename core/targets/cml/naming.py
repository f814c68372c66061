"""Which CML model is whose. Several environments may share one CML project, so a model's
name must say whose endpoint it serves in a form no two (environment, endpoint) pairs share.

An endpoint `iris` of environment `prod` is served by the model `iris@prod`: endpoint names
never hold an `@` (the command grammar allows letters, digits, `.`, `_` and `-`), so the
text before the first `@` is always the endpoint and the rest the environment, whatever
characters the environment's name holds. `prod`/`eu-iris` is `eu-iris@prod`, `prod-eu`/`iris`
is `iris@prod-eu`.

Earlier versions named it `<env>-<endpoint>`, which `prod`/`eu-iris` and `prod-eu`/`iris`
share. Such a model is adopted, under its old name, only by the one endpoint of the
environments sharing the project whose old name it is; when two could own it, neither
touches it (`CMLNameClash`) until someone renames it after the one it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.config import Environment
from core.targets.base import EndpointRef
from core.targets.cml.errors import CMLNameClash
from core.targets.cml.session import workspace_root

SEPARATOR = "@"


def model_name(ep: EndpointRef) -> str:
    """The CML model that serves endpoint `ep`: `<endpoint>@<env>`."""
    if SEPARATOR in ep.name:
        raise CMLNameClash(
            f"the endpoint name {ep.name!r} holds {SEPARATOR!r}, which CML model names use to "
            "tell environments apart: use letters, digits, `.`, `_` or `-`"
        )
    return f"{ep.name}{SEPARATOR}{ep.env}"


def owner(name: str) -> EndpointRef | None:
    """The endpoint a model named `name` by `model_name` serves; None for any other name."""
    endpoint, sep, env = name.partition(SEPARATOR)
    return EndpointRef(env, endpoint) if sep and endpoint and env else None


def legacy_name(ep: EndpointRef) -> str:
    """The name earlier versions gave the model of `ep` (ambiguous: see the module)."""
    return f"{ep.env}-{ep.name}"


@dataclass(frozen=True)
class Neighbours:
    """The environments whose models live in one CML project (a workspace and project id),
    the one they are seen from included."""

    names: tuple[str, ...]

    @classmethod
    def of(cls, env: Environment, environments: Iterable[Environment]) -> Neighbours:
        same = [
            e.name
            for e in environments
            if e.target == "cml" and e.name != env.name and same_project(e, env)
        ]
        return cls((env.name, *same))

    def legacy_owners(self, name: str) -> list[EndpointRef]:
        """Every endpoint of these environments whose old-style model name is `name`."""
        return [
            EndpointRef(env, name[len(env) + 1 :])
            for env in self.names
            if name.startswith(f"{env}-") and len(name) > len(env) + 1
        ]

    def adoptable(self, ep: EndpointRef, name: str) -> bool:
        """Whether the old-style model `name` is `ep`'s and no other endpoint's; a
        `CMLNameClash` saying what to do when another's old name is the same."""
        if name != legacy_name(ep):
            return False
        others = [o for o in self.legacy_owners(name) if (o.env, o.name) != (ep.env, ep.name)]
        if others:
            raise clash(name, [ep, *others])
        return True


def clash(name: str, owners: list[EndpointRef]) -> CMLNameClash:
    """The refusal for an old-style model `name` that any of `owners` could own."""
    whose = " or ".join(f"{o.name} in {o.env}" for o in owners)
    renames = " or ".join(f"`{model_name(o)}`" for o in owners)
    return CMLNameClash(
        f"CML model {name} was named by an earlier chatops for {whose}, which now share its "
        f"project; it is left alone: rename it in CML to {renames}, after the endpoint it "
        "serves, then try again"
    )


def same_project(a: Environment, b: Environment) -> bool:
    """Whether `a` and `b` keep their models in the same CML project."""
    return (
        workspace_root(a.url).lower() == workspace_root(b.url).lower()
        and a.project_id == b.project_id
    )
