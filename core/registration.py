"""Developers register their latest experiment run as a new model version."""

from __future__ import annotations

from core.admission.roles import Action, Actor, Role, role_in
from core.audit import AuditLog
from core.config import Settings
from core.errors import NotFound, RegistryError
from core.events import Refusal
from core.registry.runs import Registered, RunRegistrar
from core.store.repos.audit import AuditRepository


class Registration:
    def __init__(
        self, *, settings: Settings, audit: AuditRepository, registrar: RunRegistrar
    ) -> None:
        self.settings = settings
        self.registrar = registrar
        self.audit = AuditLog(audit)

    def register(
        self, *, experiment: str, run_id: str | None, model: str | None, actor: Actor, command: str
    ) -> Registered | Refusal:
        """A new version from the newest finished run of `experiment` (or `run_id`), once
        ready; developers and admins of any environment may, since the registry is shared."""
        best = max((role_in(env, actor) for env in self.settings.environments), default=Role.VIEWER)
        result: Registered | Refusal
        if best < Role.DEVELOPER:
            result = Refusal(f"only developers and admins can {Action.REGISTER.value} models")
        else:
            try:
                result = self.registrar.register(experiment, run_id=run_id, model=model)
            except (NotFound, RegistryError) as exc:
                result = Refusal(exc.message)
        self.audit.write(
            Action.REGISTER.value,
            actor_id=actor.id,
            actor_name=actor.shown,
            command=command,
            env="*",
            endpoint=model or "",
            outcome="refused" if isinstance(result, Refusal) else "succeeded",
            detail=(
                result.text
                if isinstance(result, Refusal)
                else f"{result.label} from run {result.run_id}"
            ),
        )
        return result
