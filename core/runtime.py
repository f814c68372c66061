"""Builds the bot's core from settings: repositories, registry, targets and the Deployer."""

from __future__ import annotations

import threading

from core.approvals import Approvals
from core.clock import SYSTEM_CLOCK, Clock
from core.config import Settings
from core.deployer import Deployer
from core.registration import Registration
from core.registry.demo import create_demo_model
from core.registry.mlflow import Registry
from core.registry.runs import RunRegistrar
from core.repos import Repositories
from core.targets.base import Target
from core.targets.cml.target import CMLTarget
from core.targets.local.target import LocalTarget, Zygote


class Runtime:
    """Everything one bot process needs, built once; `close()` leaves endpoints serving."""

    def __init__(
        self, settings: Settings, *, zygote: Zygote | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.repos = Repositories.open(settings.database_url, clock=clock)
        self.registry = Registry(tracking_uri=settings.mlflow_tracking_uri)
        self._own_zygote = zygote is None
        self.zygote = zygote or Zygote(state_dir=settings.state_dir)
        targets: dict[str, Target] = {}
        for env in settings.environments:
            if env.target == "cml":
                targets[env.name] = CMLTarget.from_environment(env)
                continue
            targets[env.name] = LocalTarget(
                env=env,
                state_dir=settings.state_dir,
                zygote=self.zygote,
                start_timeout_s=settings.start_timeout_s,
            )
        self.deployer = Deployer(
            settings=settings, repos=self.repos, registry=self.registry, targets=targets
        )
        self.approvals = Approvals(
            settings=settings, repos=self.repos, registry=self.registry, deployer=self.deployer
        )
        self.registration = Registration(
            settings=settings,
            audit=self.repos.audit,
            registrar=RunRegistrar(tracking_uri=settings.mlflow_tracking_uri),
        )

    def first_delivery(self, key: str) -> bool:
        """True only the first time any front sharing the database hands on `key` (a
        platform's delivery id); a retried delivery is False."""
        return self.repos.deliveries.first(key)

    def warm_up(self) -> None:
        """Start the model-server runtime (when an environment serves locally) and open the
        registry in the background."""
        local = any(env.target == "local" for env in self.settings.environments)
        if local and not self.zygote.ready:
            self.zygote.prewarm()
        threading.Thread(target=lambda: self.registry.client, daemon=True).start()

    def registry_is_empty(self) -> bool:
        return not self.registry.models()

    def create_demo(self) -> list[int]:
        return create_demo_model(
            tracking_uri=self.settings.mlflow_tracking_uri,
            artifact_root=self.settings.artifact_root,
        )

    def shut_down_endpoints(self) -> list[str]:
        """Stop every local endpoint of this state directory, recorded or not (a first deploy
        that failed leaves a host with no endpoint record); the names of those that ran."""
        stopped = []
        for target in self.deployer.targets.values():
            if isinstance(target, LocalTarget):
                for ref in target.endpoints():
                    if target.shutdown(ref):
                        stopped.append(f"{ref.name} ({ref.env})")
        return stopped

    def close(self) -> None:
        self.deployer.close()
        self.repos.close()
        if self._own_zygote:
            self.zygote.close()
