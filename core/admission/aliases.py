"""Moving an environment's registry alias by hand (`/alias iris v6 in prod`): what repairs a
drifted alias without touching what serves. Admins of the environment only, audited, never
while an operation holds the endpoint (its rollout moves the alias itself when it ends)."""

from __future__ import annotations

from core.admission.gates import Admission
from core.admission.roles import Action, Actor
from core.errors import NotFound, RegistryError
from core.events import Notice, Refusal
from core.marks import command as typed
from core.marks import person
from core.registry.aliases import aliases_of, move_alias
from core.registry.mlflow import Registry
from core.store.repos.endpoints import EndpointRepository
from core.store.repos.operations import OperationRepository


class AliasMover:
    def __init__(
        self,
        *,
        admission: Admission,
        registry: Registry,
        endpoints: EndpointRepository,
        operations: OperationRepository,
    ) -> None:
        self.admission = admission
        self.registry = registry
        self.endpoints = endpoints
        self.operations = operations

    def move(
        self,
        *,
        model: str,
        version: int,
        env: str | None,
        actor: Actor,
        command: str,
        if_serving: bool = False,
    ) -> Notice | Refusal:
        """Make the alias `env` names (`@prod`) name `model` v`version` in the registry;
        what serves is left as it is (`if_serving`: only while `env` serves that version).
        The attempt is audited whatever became of it."""
        environment = self.admission.admit(Action.ALIAS, actor, command, env, model)
        if isinstance(environment, Refusal):
            return environment
        name, alias = environment.name, environment.alias

        def audited(result: Notice | Refusal) -> Notice | Refusal:
            return self.admission.audited(Action.ALIAS, actor, command, name, model, result)

        if alias is None:
            return audited(
                Refusal(
                    f"{name} names no registry alias: an admin sets `alias` in its settings "
                    "to have the registry say what serves there"
                )
            )
        busy = [op for op in self.operations.running() if (op.env, op.endpoint) == (name, model)]
        if busy:
            op = busy[0]
            return audited(
                Refusal(
                    f"{person(op.requested_by)}'s {op.kind} of {model} in {name} ({op.id}) is "
                    f"under way: it moves @{alias} itself when it ends; nothing was moved"
                )
            )
        serving = self.endpoints.get(name, model)
        if if_serving and (serving is None or serving.version != version):
            now = (
                f"nothing of {model} serves in {name} now"
                if serving is None
                else f"{name} serves {model} v{serving.version} now, not v{version}"
            )
            return audited(Refusal(f"{now}: @{alias} was not moved"))
        try:
            self.registry.resolve(model, version=version)
            before = aliases_of(self.registry, model).get(alias)
            if before == version:
                return audited(Notice(f"@{alias} of {model} names v{version} already"))
            move_alias(self.registry, model, alias, version)
        except NotFound as exc:
            return audited(Refusal(f"{exc.message}: @{alias} was not moved"))
        except RegistryError as exc:
            return audited(Refusal(f"the registry did not move @{alias} of {model}: {exc.message}"))
        was = f" (it named v{before})" if before is not None else ""
        if serving is None:
            now = f"; nothing of {model} serves in {name}"
        elif serving.version == version:
            now = f": {name} serves v{version}"
        else:
            deploy = typed(f"deploy {model} v{version} to {name}")
            now = f"; {name} serves v{serving.version} (`{deploy}` serves v{version})"
        return audited(Notice(f"@{alias} of {model} now names v{version}{was}{now}"))
