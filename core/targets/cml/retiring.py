"""Stopping deployments and knowing they stopped. CML has no delete: a deployment serves until
it is stopped, whoever created it, so switching and stopping look at every deployment CML
lists for the endpoint's model, not at what the bot remembers, and wait until CML says each
has ended. A stop CML refuses or never confirms is an error naming what may still serve."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import TargetError
from core.targets.base import Step
from core.targets.cml.api import CMLApi
from core.targets.cml.errors import CMLNotFound, CMLNotStopped
from core.targets.cml.models import DeploymentStatus, ModelBuild, ModelDeployment
from core.targets.cml.placements import Placed, Placements
from core.targets.cml.poller import Poller
from core.targets.cml.progress import parse_build_comment, short
from core.targets.cml.statuses import deployment_status
from core.targets.cml.workspace import Workspace

ENDED = frozenset({DeploymentStatus.STOPPED, DeploymentStatus.FAILED})


@dataclass(frozen=True)
class Running:
    """A deployment that has not ended, and where it lives."""

    model_id: str
    build_id: str
    id: str
    status: str
    version: str  # the MLflow version its build is of, as people name it

    @classmethod
    def of(cls, model_id: str, build: ModelBuild, dep: ModelDeployment) -> Running:
        name, number = parse_build_comment(build)
        version = f"{name} v{number}" if name else f"build {short(build.id)}"
        return cls(model_id, build.id or "", dep.id or "", str(dep.status or "unknown"), version)

    def named(self, status: str | None = None) -> str:
        return f"deployment {short(self.id)} ({self.version}, {status or self.status})"


class Retirer:
    """Stops deployments of one workspace's models and waits, at most `timeout_s`, until CML
    says each has ended."""

    def __init__(
        self,
        *,
        client: CMLApi,
        workspace: Workspace,
        placements: Placements,
        poller: Poller,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.workspace = workspace
        self.placements = placements
        self.poller = poller
        self.timeout_s = timeout_s

    def running(self, name: str, doing: str) -> list[Running]:
        """Every deployment of model `name` that has not ended, as CML lists them now."""
        try:
            model = self.workspace.model_named(name, required=False)
            if model is None:
                return []
            listed = self.workspace.deployments(model)
        except TargetError as exc:
            last = self.placements.serving(name)
            known = (
                f"it last served from deployment {short(last.id)} ({last.model} v{last.version})"
                if last is not None
                else "what it serves is not known"
            )
            raise CMLNotStopped(
                f"could not {doing}: CML did not list the deployments of {name} "
                f"({exc.message}); {known}, and may still serve",
                still=(known,),
            ) from None
        return [
            Running.of(model.id or "", build, dep)
            for build, dep in listed
            if deployment_status(dep.status) not in ENDED
        ]

    def placed(self, name: str, deployment: str, doing: str) -> Running | None:
        """Deployment `deployment` of model `name` if it has not ended; None if it has, or
        CML does not have it."""
        try:
            placed = self.placements.locate(name, deployment)
            if placed is None:
                return None
            dep = self.client.get_model_deployment(*self._ids(placed))
        except CMLNotFound:
            return None
        except TargetError as exc:
            raise CMLNotStopped(
                f"could not {doing}: CML did not say how deployment {short(deployment)} is "
                f"({exc.message}); it may still serve",
                still=(f"deployment {short(deployment)}",),
            ) from None
        if deployment_status(dep.status) in ENDED:
            return None
        version = f"{placed.model} v{placed.version}" if placed.model else "?"
        status = str(dep.status or "unknown")
        return Running(placed.model_id, placed.build_id, placed.id, status, version)

    def stop(self, name: str, running: list[Running], step: Step, doing: str) -> None:
        """Tells CML to stop each of `running` (of model `name`) and waits until each has
        ended; `CMLNotStopped` names those CML refused to stop or did not confirm in time."""
        if not running:
            return
        project = self.workspace.project
        refused: dict[str, str] = {}
        for run in running:
            if deployment_status(run.status) == DeploymentStatus.STOPPING:
                continue  # already told: only the wait is left
            try:
                self.client.stop_model_deployment(project, run.model_id, run.build_id, run.id)
            except CMLNotFound:
                continue  # gone: it serves nothing
            except TargetError as exc:
                refused[run.id] = exc.message
        asked = [run for run in running if run.id not in refused]
        if asked:
            step.say(f"stopping {', '.join(run.named() for run in asked)} of CML model {name}")
        last = self._wait_ended(asked)
        unconfirmed = [run for run in asked if deployment_status(last.get(run.id)) not in ENDED]
        if not refused and not unconfirmed:
            return
        still = [run.named() for run in running if run.id in refused]
        still += [run.named(last.get(run.id) or "not readable") for run in unconfirmed]
        why = []
        if refused:
            why.append(f"CML refused to stop them ({next(iter(refused.values()))})")
        if unconfirmed:
            why.append(f"CML did not confirm they stopped within {self.timeout_s:g} s")
        raise CMLNotStopped(
            f"could not {doing}: {', '.join(still)} may still serve; {' and '.join(why)}",
            still=tuple(still),
        )

    def _wait_ended(self, running: list[Running]) -> dict[str, str | None]:
        """The last status CML gave each of `running` (None: it could not be read)."""
        if not running:
            return {}
        project = self.workspace.project

        def read() -> dict[str, str | None]:
            statuses: dict[str, str | None] = {}
            for run in running:
                try:
                    dep = self.client.get_model_deployment(
                        project, run.model_id, run.build_id, run.id
                    )
                    statuses[run.id] = str(dep.status)
                except CMLNotFound:
                    statuses[run.id] = DeploymentStatus.STOPPED  # gone serves nothing
                except TargetError:
                    statuses[run.id] = None  # unknown: keep asking until the deadline
            return statuses

        polled = self.poller.until(
            read,
            lambda statuses: all(deployment_status(s) in ENDED for s in statuses.values()),
            timeout_s=self.timeout_s,
        )
        return polled.value

    def _ids(self, placed: Placed) -> tuple[str, str, str, str]:
        return (self.workspace.project, placed.model_id, placed.build_id, placed.id)
