"""The composition root: what each kind of bot process is made of, built in one place from
settings, and how it stops.

Kinds of process: the Slack front over HTTP or Socket Mode (`bot.serve.run_slack`: records
and acks; its worker process runs), that worker process (`bot.slack.worker`), `chatops
worker` (`bot.serve.worker`: operations, and Slack jobs when a bot token is set), and the
console (`bot.cli`). Each is assembled from `background` (what runs work: Slack jobs,
operations, registry events, watch windows) and `slack_work` (how Slack jobs run and are
told), never from a copy of their wiring.

Stopping is part of the design. SIGTERM (what systemd, Kubernetes and Heroku send) and
SIGINT (Ctrl-C) mean the same: `Stopping` notes it at once. A front then stops taking
(`/readyz` says so, the Socket Mode link is closed so Slack sends elsewhere, what arrived is
recorded before it is acked) and starts no new worker; a process that runs work hands it over
(`Background.hand_over`): each operation stops at its next step boundary with its step
recorded and its lease ended, within `HANDOVER_S`, so another process resumes it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.arenas import TRIM_S, trim
from core.errors import StoreError
from core.events import LogReporter, Reporter
from core.execution.leases import let_lapse
from core.execution.taking import Taker, rounds
from core.oncall.alerts import Alerts, LogAlerts

if TYPE_CHECKING:
    from bot.slack.intake.dispatch import JobTaker
    from bot.slack.intake.work import Work
    from bot.slack.settings import SlackSettings
    from core.announcements import RegistryFeed
    from core.execution.runner import Runner
    from core.oncall.watching import Watcher
    from core.runtime import Runtime
    from core.store.models import Operation

log = logging.getLogger("chatops")

# how long a stopping process gives the operations it runs to reach a step boundary; what is
# still mid-step then has its lease ended all the same and resumes elsewhere from its last
# recorded step (a step resumes from the remote ids it recorded)
HANDOVER_S = 20.0
FRONTS_NO_SLACK = frozenset({""})
FRONTS_SLACK = frozenset({"", "slack"})


@dataclass
class Background:
    """What runs work in one process, under one owner name and on one taker loop (`taker`):
    operations (`runner`), watch windows (`watcher`), and, with Slack, the jobs fronts
    recorded (`jobs`) and registry events (`registry`)."""

    runtime: Runtime
    runner: Runner
    watcher: Watcher
    jobs: JobTaker | None = None
    # registry events: polled, or the MLflow webhook registered (None: nobody to tell)
    registry: RegistryFeed | None = None
    taker: Taker = field(init=False)

    def __post_init__(self) -> None:
        sources = self.runner.sources() + self.watcher.sources()
        if self.jobs is not None:
            sources = self.jobs.sources() + sources  # quick answers are asked for first
        if self.registry is not None:
            sources += self.registry.sources()
        sources.append(rounds("memory", trim, TRIM_S))  # freed memory back to the system
        self.taker = Taker(sources, poll_s=self.runtime.settings.runner_poll_s)

    @property
    def owner(self) -> str:
        return self.runner.owner

    def start(self) -> Background:
        if self.jobs is not None:
            self.jobs.attach(self.taker)
        self.taker.start()
        return self

    def nudge(self) -> None:
        """A job was recorded: look now."""
        self.taker.nudge()

    def hand_over(self, within: float = HANDOVER_S) -> bool:
        """Stop taking anything, leave every operation at its next step boundary with its
        lease ended (within `within` seconds, else mid-step, its lease ended all the same),
        and end the leases of jobs left; whether everything was left in time."""
        self.runtime.leases.hand_over()  # first: every operation stops at a boundary
        left = self.taker.hand_over(within)
        self.watcher.stop()  # an automatic rollback under way stops at its boundary too
        if self.jobs is not None:
            left = self.jobs.hand_over(within) and left
        # last, once no thread of this process is sending anything: what it still held
        # (operations, jobs, watches, what it owed) is taken elsewhere now, not a lease later
        try:
            let_lapse(self.runtime.repos.db, self.runtime.leases.owner)
        except StoreError as exc:  # it lapses by itself a lease later
            log.warning("could not end the leases this process held: %s", exc.message)
        return left


def slack_work(runtime: Runtime, slack: SlackSettings) -> Work:
    """How this process runs Slack jobs and tells people: the one place `Work` is built,
    with the bot's name (as `auth.test` says), the namespace command and the channels."""
    from bot.slack.intake.work import Work
    from bot.slack.posting.poster import Poster, web_client

    if slack.bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    client = web_client(token=slack.bot_token.get_secret_value(), base_url=slack.api_url)
    return Work(
        runtime=runtime,
        poster=Poster(client),
        bot_name=str(client.auth_test().get("user") or "chatops"),
        min_interval=slack.update_interval,
        command=slack.command,
        direct=slack.direct_commands,
        announce_channel=slack.announce_channel,
    )


def background(
    runtime: Runtime,
    *,
    work: Work | None = None,
    slack: SlackSettings | None = None,
    reporter_for: Callable[[Operation], Reporter] | None = None,
    alerts: Alerts | None = None,
) -> Background:
    """What runs work in this process, not yet started. With `work` (and its `slack`
    settings): Slack jobs, operations asked from Slack reported in their threads, registry
    events announced, on-call alerts in Slack. Without: operations asked outside Slack,
    reported by `reporter_for` (else in the log), alerts by `alerts` (else in the log)."""
    settings = runtime.settings
    if work is None or slack is None:
        runner = runtime.worker(
            reporter_for=reporter_for or (lambda _op: LogReporter()), fronts=FRONTS_NO_SLACK
        )
        watcher = runtime.watcher(
            alerts=alerts or LogAlerts(), runner=runner, fronts=FRONTS_NO_SLACK
        )
        return Background(runtime=runtime, runner=runner, watcher=watcher)
    from bot.slack.intake.dispatch import JobTaker
    from bot.slack.posting.oncall import OnCall

    runner = runtime.worker(
        reporter_for=work.reporter_for, fronts=FRONTS_SLACK, workers=slack.workers
    )
    jobs = JobTaker(
        queue=runtime.jobs,
        run=work.run,
        send_owed=work.send_owed,
        workers=slack.workers,
        lease_s=settings.lease_s,
        poll_s=settings.runner_poll_s,
        owner=runner.owner,
    )
    watcher = runtime.watcher(
        alerts=OnCall(
            poster=work.poster,
            channel=slack.oncall_channel,
            people=work.people,
            naming=work.naming,
        ),
        runner=runner,
        fronts=FRONTS_SLACK,
    )

    return Background(
        runtime=runtime,
        runner=runner,
        watcher=watcher,
        jobs=jobs,
        registry=work.announcer.follow(),
    )
