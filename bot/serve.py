"""The long-running processes `chatops` starts: the Slack front (with its worker process) and
`chatops worker`, which runs operations and Slack jobs without serving Slack."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console

from core import metrics
from core.config import Settings
from core.errors import ChatOpsError
from core.scrub import install_log_filter

if TYPE_CHECKING:
    from bot.slack.settings import Mode, SlackSettings
    from core.runtime import Runtime


def worker(runtime: Runtime, out: Console) -> int:
    """Operations from the store, reported in their Slack threads when Slack is configured
    (else in the log), until SIGINT or SIGTERM."""
    from bot.slack.settings import SlackSettings
    from core.alerts import Alerts, LogAlerts
    from core.events import LogReporter, Reporter
    from core.models import Operation

    configure_logging()
    metrics.share(runtime.settings.state_dir)  # a front on this machine shows its counts
    reporter_for: Callable[[Operation], Reporter] = lambda _op: LogReporter()  # noqa: E731
    fronts = frozenset({""})
    alerts: Alerts = LogAlerts()
    taker = None
    watch = None
    slack = SlackSettings()
    if slack.bot_token is None:
        out.print(
            "No SLACK_BOT_TOKEN: this worker takes only operations asked outside Slack "
            "(a Slack thread is kept current only by a process that can post to it)."
        )
    else:
        from bot.slack.oncall import OnCall
        from bot.slack.poster import Poster, web_client
        from bot.slack.work import Work

        client = web_client(token=slack.bot_token.get_secret_value(), base_url=slack.api_url)
        work = Work(
            runtime=runtime,
            poster=Poster(client),
            min_interval=slack.update_interval,
            announce_channel=slack.announce_channel,
        )
        reporter_for = work.reporter_for
        alerts = OnCall(poster=work.poster, channel=slack.oncall_channel, people=work.people)
        fronts = frozenset({"", "slack"})
        from bot.slack.dispatch import JobTaker

        # Slack jobs any front recorded in this database, and those a dead process held
        taker = JobTaker(
            queue=runtime.jobs,
            run=work.run,
            workers=slack.workers,
            lease_s=runtime.settings.lease_s,
            poll_s=runtime.settings.runner_poll_s,
        )
    runtime.warm_up()
    if taker is not None:
        taker.start()
        watch = work.announcer.watch()  # registry events: polled, or the MLflow webhook registered
    runner = runtime.worker(reporter_for=reporter_for, fronts=fronts).start()
    watcher = runtime.watcher(alerts=alerts, runner=runner, fronts=fronts).start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    out.print(f"chatops worker {runner.owner}: taking operations", highlight=False)
    stop.wait()
    held = len(runtime.leases.held)
    out.print(
        f"chatops worker: finishing what it holds ({held} operation(s)); to leave them now, "
        f"kill it: another bot process takes them over {runtime.settings.lease_s:g} s later"
    )
    if watch is not None:
        watch.stop()
    if taker is not None:
        taker.close()
    watcher.stop()
    runner.stop(wait=True)
    return 0


def missing(slack: SlackSettings, mode: Mode) -> str | None:
    """What `mode` needs that the settings lack (a token, the signing secret), in words for
    whoever starts the bot; None when nothing is missing."""
    from bot.slack.app import NO_SECRET
    from bot.slack.settings import Mode

    if mode is Mode.CONSOLE:
        return None
    if slack.bot_token is None:
        return (
            f"SLACK_BOT_TOKEN is not set: {mode.value} mode posts as the bot "
            "(OAuth & Permissions → Bot User OAuth Token, xoxb-…)"
        )
    if mode is Mode.SOCKET and slack.app_token is None:
        return (
            "SLACK_APP_TOKEN is not set: Socket Mode connects with an app-level token "
            "(Basic Information → App-Level Tokens, connections:write, xapp-…)"
        )
    if mode is Mode.HTTP and slack.signing_secret is None:
        return NO_SECRET
    return None


def run_slack(settings: Settings, slack: SlackSettings, mode: Mode, out: Console) -> int:
    """The front, once its worker process said it can run commands: else exit code 2 and
    why (a corrupt state database, a missing CML key, wrong settings), never a front that
    acks what nobody will run."""
    from bot.slack.app import EVENTS_PATH, NO_SECRET, SlackFront
    from bot.slack.dispatch import WorkerProcess
    from bot.slack.settings import Mode
    from core.jobs import JobQueue

    if mode is Mode.HTTP and slack.signing_secret is None:
        out.print(f"[red]cannot start: {NO_SECRET}[/]")
        return 2
    configure_logging()
    try:
        queue = JobQueue.open(settings.database_url)
    except ChatOpsError as exc:
        out.print(f"[red]cannot start: {exc.message}[/]")
        return 2
    # the worker process inherits the directory: the front's /metrics shows its counts
    metrics.share(settings.state_dir, clean=True)
    worker = WorkerProcess(queue=queue)
    try:
        front = SlackFront(slack, queue=queue, dispatcher=worker)
    except ValueError as exc:
        out.print(f"[red]cannot start the Slack front: {exc}[/]")
        return 2
    try:
        problem = worker.start()
        if problem is not None:
            out.print(f"[red]cannot start: the worker process cannot run commands: {problem}[/]")
            return 2
        # What start-up built (Bolt, SQLAlchemy, the migrations) lives as long as the front:
        # kept out of the collector, a full collection no longer walks it (40 ms and more
        # under load, paid by every ack waiting behind it on the event loop).
        gc.collect()
        gc.freeze()
        if mode is Mode.SOCKET:
            try:  # no Slack requests come over HTTP: only load balancers and Prometheus
                side = front.side_server()
            except OSError as exc:
                out.print(f"[red]cannot serve /healthz and /metrics on port {slack.port}: {exc}[/]")
                return 2
            threading.Thread(target=side.run, name="http", daemon=True).start()
            out.print(
                f"chatops: Slack Socket Mode (health: /healthz, ready: /readyz, metrics: "
                f"/metrics on {slack.host}:{side.port})"
            )
            front.serve_socket_mode()
        else:
            try:
                server = front.http_server()
            except (ValueError, OSError) as exc:
                out.print(f"[red]cannot start the Slack front: {exc}[/]")
                return 2
            out.print(
                f"chatops: Slack HTTP mode on {slack.host}:{server.port}{EVENTS_PATH} "
                "(health: /healthz, ready: /readyz, metrics: /metrics)"
            )
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        front.close()
    return 0


def configure_logging() -> None:
    """Log lines to stderr, each scrubbed of credentials and server paths first."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_filter()
