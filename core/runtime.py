"""Builds the bot's core from settings and wires it: the Deployer admits operations, the
Runner runs them through Rollouts under Leases, the Locker guards endpoints."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from core.admission.aliases import AliasMover
from core.admission.approvals import Approvals
from core.admission.deployer import Deployer
from core.admission.locker import Locker
from core.admission.planner import Planner
from core.admission.roles import Actor
from core.announcements import Announcements
from core.audit import AuditLog
from core.clock import SYSTEM_CLOCK, Clock
from core.config import Settings
from core.drift import DriftGuard
from core.errors import ChatOpsError
from core.events import NullReporter
from core.execution.leases import Leases
from core.execution.rollout import Rollouts
from core.execution.runner import ReporterFor, Runner
from core.moments import UTC_ZONE, Moment, Zone
from core.oncall.alerts import Alerts
from core.oncall.checks.cache import ReadinessCache
from core.oncall.checks.readiness import readiness
from core.oncall.status import Problems, admin_problems
from core.oncall.timemachine import ServedAt, served_at
from core.oncall.watching import CHECK_S, Watcher
from core.outbox import Outbox
from core.registration import Registration
from core.registry.demo import create_demo_model
from core.registry.mlflow import Registry
from core.registry.runs import RunRegistrar
from core.scrub import register_settings
from core.store.jobs import JobQueue
from core.store.repos import Repositories
from core.targets.base import Target, quiet_step
from core.targets.cml.target import CMLTarget
from core.targets.local.target import LocalTarget, Zygote
from core.tokens import Tokens

log = logging.getLogger("chatops.core")


@dataclass
class Core:
    """The operation path of one bot process, wired: the Deployer admits, the Runner runs
    through Rollouts under Leases, the Locker guards endpoints."""

    settings: Settings
    repos: Repositories
    registry: Registry
    targets: dict[str, Target]
    leases: Leases
    locker: Locker
    rollouts: Rollouts
    runner: Runner  # runs what a waiting caller has just had admitted
    deployer: Deployer
    outbox: Outbox  # what this process owes people, until it was sent
    drift: DriftGuard  # what serves, judged against the environments' registry aliases

    def worker(
        self,
        *,
        reporter_for: ReporterFor = lambda _op: NullReporter(),
        fronts: frozenset[str] = frozenset({""}),
        workers: int = 4,
    ) -> Runner:
        return Runner(
            settings=self.settings,
            operations=self.repos.operations,
            rollouts=self.rollouts,
            leases=self.leases,
            outbox=self.outbox,
            reporter_for=reporter_for,
            fronts=fronts,
            workers=workers,
        )

    def close(self) -> None:
        """Stop renewing leases and close the targets' connections; endpoints keep serving."""
        self.leases.close()
        for target in self.targets.values():
            target.close()


def wire(
    *, settings: Settings, repos: Repositories, registry: Registry, targets: dict[str, Target]
) -> Core:
    """The operation path over `repos`, `registry` and `targets`."""
    leases = Leases(repos.operations, lease_s=settings.lease_s)
    locker = Locker(repos, ttl_s=settings.lock_ttl_s)
    audit = AuditLog(repos.audit)
    outbox = Outbox(
        repos.outbox,
        owner=leases.owner,
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
    )
    rollouts = Rollouts(
        settings=settings,
        repos=repos,
        registry=registry,
        targets=targets,
        leases=leases,
        locker=locker,
        audit=audit,
        outbox=outbox,
    )
    runner = Runner(
        settings=settings,
        operations=repos.operations,
        rollouts=rollouts,
        leases=leases,
        outbox=outbox,
    )
    drift = DriftGuard(
        settings=settings,
        registry=registry,
        endpoints=repos.endpoints,
        operations=repos.operations,
        events=repos.registry_events,
        outbox=outbox,
    )
    deployer = Deployer(
        settings=settings,
        repos=repos,
        targets=targets,
        locker=locker,
        audit=audit,
        owner=leases.owner,
        run_here=runner.run,
        known_models=registry.models,
        drift=drift,
    )
    rollouts.decide = deployer.canary  # what a canary decides by itself is a command too
    return Core(
        settings=settings,
        repos=repos,
        registry=registry,
        targets=targets,
        leases=leases,
        locker=locker,
        rollouts=rollouts,
        runner=runner,
        deployer=deployer,
        outbox=outbox,
        drift=drift,
    )


class Runtime:
    """Everything one bot process needs, built once; `close()` leaves endpoints serving."""

    def __init__(
        self,
        settings: Settings,
        *,
        zygote: Zygote | None = None,
        clock: Clock = SYSTEM_CLOCK,
        targets: dict[str, Target] | None = None,
    ) -> None:
        """`targets`: what serves each environment, when not the one its settings name (a
        recording target in tests)."""
        self.settings = settings
        register_settings(settings)  # before anything can fail with them in its text
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.repos = Repositories.open(
            settings.database_url, clock=clock, keep_done_s=settings.keep_done_s
        )
        # what fronts asked, until a bot process ran it (and `keep_done_s` after)
        self.jobs = JobQueue(self.repos.db, keep_s=settings.keep_done_s)
        self.registry = Registry(
            tracking_uri=settings.mlflow_tracking_uri, wait_s=settings.registry_wait_s
        )
        self._own_zygote = zygote is None
        self.zygote = zygote or Zygote(state_dir=settings.state_dir)
        targets = dict(targets or {})
        for env in settings.environments:
            if env.name in targets:
                continue
            if env.target == "cml":
                targets[env.name] = CMLTarget.from_environment(env, sharing=settings.environments)
                continue
            targets[env.name] = LocalTarget(
                env=env,
                state_dir=settings.state_dir,
                zygote=self.zygote,
                start_timeout_s=settings.start_timeout_s,
            )
        self.core = wire(
            settings=settings, repos=self.repos, registry=self.registry, targets=targets
        )
        self.targets = targets
        self.leases = self.core.leases
        self.locker = self.core.locker
        self.rollouts = self.core.rollouts
        self.runner = self.core.runner
        self.outbox = self.core.outbox
        self.deployer = self.core.deployer
        # what a change would do, by the same admission, changing nothing
        self.planner = Planner(deployer=self.deployer, registry=self.registry)
        # an environment's registry alias moved by hand (what repairs a drifted one)
        self.aliases = AliasMover(
            admission=self.deployer.admission,
            registry=self.registry,
            endpoints=self.repos.endpoints,
            operations=self.repos.operations,
        )
        self.approvals = Approvals(
            settings=settings, repos=self.repos, registry=self.registry, deployer=self.deployer
        )
        # registry events (new versions, aliases, tags), each announced by one bot process
        self.drift = self.core.drift
        self.announcements = Announcements(
            settings=settings,
            registry=self.registry,
            events=self.repos.registry_events,
            endpoints=self.repos.endpoints,
            outbox=self.outbox,
            drift=self.drift,
        )
        self.registration = Registration(
            settings=settings,
            audit=self.repos.audit,
            registrar=RunRegistrar(
                tracking_uri=settings.mlflow_tracking_uri, wait_s=settings.registry_wait_s
            ),
        )
        # personal API tokens: what the HTTP API (`mlflow deployments`) acts on a user's behalf by
        self.tokens = Tokens(self.repos.tokens, ttl_s=settings.api_token_ttl_s)
        # the environments, registry and database as `chatops check` sees them (the front
        # checks Slack with its own token); started by `warm_up`
        self.readiness = ReadinessCache(
            lambda: readiness(settings, registry=self.registry), clock=clock
        )

    def warm_up(self, *, wait: bool = False) -> None:
        """Start the model-server runtime (when an environment serves locally) and open the
        registry, in the background; with `wait`, return once both are done (a command
        then runs at once). Then check readiness, in the background either way."""
        local = self.settings.serves_locally
        if local and not self.zygote.ready:
            self.zygote.prewarm()
        if not wait:
            # one after the other: both import MLflow, and a command waits for the first
            threading.Thread(target=self._open_then_check, name="warm-up", daemon=True).start()
            return
        if local:
            self.zygote.wait_ready()
        self._open_then_check()

    def _open_then_check(self) -> None:
        try:
            self.registry.client  # noqa: B018 (opening it is the point)
        except Exception as exc:  # the first command that needs it reports the registry
            log.warning("could not open the registry yet: %s", type(exc).__name__)
        self.readiness.start()

    def readiness_problems(self, actor: Actor, *, env: str | None = None) -> Problems | None:
        """What the last readiness check found wrong that `actor` administers (see
        `admin_problems`); never waits on a check."""
        return admin_problems(self.settings, actor, self.readiness.latest(), env=env)

    def served_at(self, endpoint: str, moment: Moment, zone: Zone = UTC_ZONE) -> ServedAt:
        """What served `endpoint` in every environment at `moment` (read in `zone` when it
        names none), who switched it and by which operation; changes nothing."""
        now = self.repos.db.now()
        return served_at(
            self.repos,
            self.settings,
            endpoint=endpoint,
            at=moment.instant(now, zone.tz),
            now=now,
            zone=zone,
        )

    def registry_is_empty(self) -> bool:
        return not self.registry.models()

    def create_demo(self) -> list[int]:
        return create_demo_model(
            tracking_uri=self.settings.mlflow_tracking_uri,
            artifact_root=self.settings.artifact_root,
        )

    def worker(
        self,
        *,
        reporter_for: ReporterFor = lambda _op: NullReporter(),
        fronts: frozenset[str] = frozenset({""}),
        workers: int = 4,
    ) -> Runner:
        """A Runner of this process (sharing its leases) that reports with `reporter_for`
        and takes operations asked from `fronts`; `.start()` it to take them as they come."""
        return self.core.worker(reporter_for=reporter_for, fronts=fronts, workers=workers)

    def watcher(
        self,
        *,
        alerts: Alerts,
        runner: Runner,
        fronts: frozenset[str] = frozenset({""}),
        check_s: float = CHECK_S,
        scan_s: float | None = None,
    ) -> Watcher:
        """The watch windows after switches (of operations asked from `fronts`) and the sentinel
        between rollouts, told through `alerts`; rollbacks run on `runner` (this process's
        worker). `.start()` it to check in the background."""
        return Watcher(
            settings=self.settings,
            repos=self.repos,
            targets=self.targets,
            deployer=self.deployer,
            runner=runner,
            alerts=alerts,
            outbox=self.outbox,
            fronts=fronts,
            check_s=check_s,
            scan_s=scan_s,
            poll_s=self.settings.runner_poll_s,
        )

    def shut_down_endpoints(self) -> list[str]:
        """Stop every endpoint the targets run for this bot, recorded or not (a first deploy
        that failed leaves a host with no endpoint record); the names of those that ran."""
        stopped = []
        for target in self.targets.values():
            for ref in target.endpoints():
                try:
                    target.stop(ref, quiet_step())
                except ChatOpsError as exc:
                    log.warning("could not stop %s in %s: %s", ref.name, ref.env, exc.message)
                    continue
                stopped.append(f"{ref.name} ({ref.env})")
        return stopped

    def close(self) -> None:
        self.readiness.close()
        self.core.close()
        self.repos.close()
        if self._own_zygote:
            self.zygote.close()
