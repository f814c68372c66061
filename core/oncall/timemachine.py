"""What served an endpoint at a moment in the past, in every environment, read from the
served history (`core.store.repos.served`): the version, since when and until when, who
switched it to that version (and who approved), and the operation that did it, with where
that operation reported (its thread, for a front that can link it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.config import Settings
from core.marks import command, person
from core.moments import Zone
from core.store.repos import Repositories
from core.store.repos.served import Interval


@dataclass(frozen=True)
class Switch:
    """One version serving one environment at the moment asked, and the operation that made
    it serve."""

    env: str
    model: str
    version: int
    since: datetime
    until: datetime | None  # None: it serves still
    operation: str
    requester: str  # as the front recorded them (a person mark renders them)
    approver: str
    where: dict[str, Any] = field(default_factory=dict)  # where the operation reported
    alias: str = ""  # the registry alias its environment names ("" none)
    named: int | None = None  # the version `alias` named at the moment asked (None: none)
    refused: bool = False  # the registry refused the switch's write-back, and nothing since
    known: bool = False  # whether what `alias` named then is known


@dataclass(frozen=True)
class ServedAt:
    """The answer to `/history <endpoint> --at <moment>`; times kept in UTC, shown in
    `zone` (the asker's)."""

    endpoint: str
    at: datetime
    now: datetime
    zone: Zone
    envs: tuple[str, ...]
    served: tuple[Switch, ...]
    begins: datetime | None  # when the served history begins; None: nothing recorded yet
    ok: bool = True

    def when(self, moment: datetime) -> str:
        """`moment` as the asker reads it: in their zone, to the minute."""
        return f"{moment.astimezone(self.zone.tz):%Y-%m-%d %H:%M %Z}".strip()

    @property
    def future(self) -> bool:
        return self.at > self.now

    @property
    def title(self) -> str:
        return f"What served {self.endpoint} at {self.when(self.at)}"

    @property
    def remark(self) -> str:
        """What stands instead of the environments' lines when there is nothing to read:
        the moment is to come, or before the history begins; "" otherwise."""
        at = self.when(self.at)
        if self.future:
            status = command(f"status {self.endpoint}")
            return (
                f"{at} is still to come (it is {self.when(self.now)} now): `{status}` shows "
                f"what serves {self.endpoint} now."
            )
        if self.begins is None:
            return (
                f"Nothing has been recorded serving yet, so nothing served {self.endpoint} at {at}."
            )
        if self.at < self.begins:
            return (
                f"The history of what served begins at {self.when(self.begins)}: nothing is "
                f"known of what served {self.endpoint} at {at}."
            )
        return ""

    def of(self, env: str) -> list[Switch]:
        return [s for s in self.served if s.env == env]

    def nothing(self, env: str) -> str:
        return f"nothing served {self.endpoint} in {env} at {self.when(self.at)}"

    def line(self, s: Switch) -> str:
        """One switch in words, its people as marks; the front adds the thread."""
        until = f" until {self.when(s.until)}" if s.until else ", serving still"
        by = f", switched by {person(s.requester)}" if s.requester else ""
        approved = f", approved by {person(s.approver)}" if s.approver else ""
        op = f" in operation {s.operation}" if s.operation else ""
        return (
            f"{s.env}: {s.model} v{s.version} since {self.when(s.since)}{until}{by}{approved}{op}"
            + self.alias_note(s)
        )

    def alias_note(self, s: Switch) -> str:
        """What the environment's registry alias named at the moment: `; @prod named v6`."""
        if not s.alias or not s.known:
            return ""
        if s.refused:
            return f"; @{s.alias} was not moved to it (the registry refused)"
        if s.named is None:
            return f"; @{s.alias} named no version"
        return f"; @{s.alias} named v{s.named}"

    @property
    def text(self) -> str:
        lines = [self.title + f" (times in {self.zone.name}):"]
        if self.remark:
            return "\n".join([*lines, self.remark])
        for env in self.envs:
            found = self.of(env)
            lines += [self.line(s) for s in found] or [self.nothing(env) + "."]
        return "\n".join(lines)


def served_at(
    repos: Repositories,
    settings: Settings,
    *,
    endpoint: str,
    at: datetime,
    now: datetime,
    zone: Zone,
) -> ServedAt:
    """What served `endpoint` at `at` in every environment (the configured ones first), with
    who switched it and the operation that did; changes nothing."""
    at = at.astimezone(UTC)
    intervals = [] if at > now else repos.served.at(endpoint, at)
    envs = [e.name for e in settings.environments]
    envs += sorted({i.env for i in intervals} - set(envs))
    return ServedAt(
        endpoint=endpoint,
        at=at,
        now=now,
        zone=zone,
        envs=tuple(envs),
        served=tuple(_switch(repos, settings, i, at) for i in intervals),
        begins=repos.served.begins(),
    )


def _switch(repos: Repositories, settings: Settings, interval: Interval, at: datetime) -> Switch:
    op = repos.operations.get(interval.operation) if interval.operation else None
    brief = (op.brief if op is not None else None) or {}
    environment = settings.environment(interval.env)
    alias = (environment.alias if environment is not None else None) or ""
    named: int | None = None
    refused, known = False, False
    if alias:
        # the switch's own write-back, then any move of the alias seen after it, by `at`
        written = (op.remote or {}).get("written") if op is not None else None
        if isinstance(written, str):
            named, refused, known = interval.version, bool(written), True
        moves = repos.registry_events.alias_moves(
            interval.model, alias, since=interval.started, until=at
        )
        if moves:
            named, refused, known = moves[-1][1], False, True
    return Switch(
        env=interval.env,
        model=interval.model,
        version=interval.version,
        since=interval.started,
        until=interval.ended,
        operation=interval.operation,
        requester=op.requested_by if op is not None else "",
        approver=str(brief.get("approver") or ""),
        where=dict(op.reply_to or {}) if op is not None else {},
        alias=alias,
        named=named,
        refused=refused,
        known=known,
    )
