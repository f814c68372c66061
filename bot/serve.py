"""The long-running processes `chatops` starts: the Slack front (with its worker process) and
`chatops worker`, which runs operations and Slack jobs without serving Slack."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from core import metrics
from core.config import Settings
from core.errors import ChatOpsError
from core.scrub import install_log_filter, register_settings

if TYPE_CHECKING:
    from bot.slack.app import HttpServer
    from bot.slack.settings import Mode, SlackSettings
    from bot.slack.transport.doorkeeper import Doorkeeper
    from bot.stopping import Stopping
    from core.runtime import Runtime


def worker(runtime: Runtime, out: Console) -> int:
    """`chatops worker`: operations from the store, reported in their Slack threads when Slack
    is configured (else in the log), until SIGINT or SIGTERM; then what it runs is handed
    over at the next step boundary."""
    from bot.arenas import few_arenas
    from bot.process import HANDOVER_S, background, slack_work
    from bot.slack.settings import SlackSettings
    from bot.stopping import Stopping

    few_arenas()  # before its work starts threads: its RSS stays flat over thousands of jobs
    configure_logging()
    stopping = Stopping().install()
    metrics.share(runtime.settings.state_dir)  # a front on this machine shows its counts
    slack = SlackSettings()
    if slack.bot_token is None:
        out.print(
            "No SLACK_BOT_TOKEN: this worker takes only operations asked outside Slack "
            "(a Slack thread is kept current only by a process that can post to it)."
        )
        running = background(runtime)
    else:
        slack.register_secrets()
        running = background(runtime, work=slack_work(runtime, slack), slack=slack)
    runtime.warm_up()
    running.start()
    out.print(f"chatops worker {running.owner}: taking operations", highlight=False)
    stopping.wait()
    held = len(runtime.leases.held)
    out.print(
        f"chatops worker: handing over what it runs ({held} operation(s)) at the next step; "
        "another bot process resumes it at once"
    )
    running.hand_over(HANDOVER_S)
    return 0


def missing(slack: SlackSettings, mode: Mode) -> str | None:
    """What `mode` needs that the settings lack (a token, the signing secret), in words for
    whoever starts the bot; None when nothing is missing."""
    from bot.slack.settings import NO_SECRET, Mode

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


def run_slack(
    settings: Settings,
    slack: SlackSettings,
    mode: Mode,
    out: Console,
    *,
    stopping: Stopping | None = None,
    door: Doorkeeper | None = None,
) -> int:
    """The front: its port bound and `/healthz` answered at once, `/readyz` 503 until its
    worker process said it can run commands; commands sent meanwhile are recorded, acked and
    answered once it can (Socket Mode connects only then). A worker that cannot start ends
    it with exit code 2 and why (a missing CML key, wrong settings); a state database it
    cannot open, before a worker is started (the port closed with it). Until SIGTERM or
    SIGINT: then it takes nothing more (`/readyz` 503, the Socket Mode link closed, the HTTP
    port closed after the requests under way), starts no worker, and waits for its worker to
    hand over what it runs.

    `door` holds the port from the process's first milliseconds (`/healthz` answered while
    this loads) and hands it, with the requests it kept, to the HTTP server; `stopping`
    took the signals since then: one that came meanwhile ends the front here, cleanly."""
    from bot.process import HANDOVER_S
    from bot.slack.settings import Mode
    from bot.stopping import Stopping
    from core.store import migrate

    stopping = stopping or Stopping()
    if (problem := missing(slack, mode)) is not None:
        out.print(f"[red]cannot start: {problem}[/]")
        return 2
    configure_logging()
    register_settings(settings)  # this process logs too: its database URL, for one
    log = logging.getLogger("chatops.slack")
    try:
        # a database not yet at this version's schema is migrated by a child process
        # (Alembic stays out of this long-lived one) while this one loads Bolt and uvicorn
        migrate.upgrade_apart(settings.database_url, meanwhile=_load_the_front)
        from core.store.jobs import JobQueue

        queue = JobQueue.open(settings.database_url)
    except ChatOpsError as exc:
        if stopping.stopped:  # Ctrl-C to the group reached the migration too
            return _stopped_early(stopping, log)
        out.print(f"[red]cannot start: {exc.message}[/]")
        return 2
    if stopping.stopped:
        return _stopped_early(stopping, log)
    from bot.slack.app import EVENTS_PATH, SlackFront
    from bot.slack.intake.dispatch import FRONTS, WorkerProcess

    # the worker process inherits the directory: the front's /metrics shows its counts
    metrics.share(settings.state_dir, clean=True)
    # the worker checks readiness and logs it (with Slack's checks for this front's mode):
    # the checks load MLflow, which this process never imports
    worker = WorkerProcess(queue=queue, args=("--front", mode.value))
    try:
        front = SlackFront(slack, queue=queue, dispatcher=worker)
    except ValueError as exc:
        out.print(f"[red]cannot start the Slack front: {exc}[/]")
        return 2
    if stopping.stopped:
        return _stopped_early(stopping, log)
    stopping.tell(worker.stopping)  # from the signal on, no worker is started again
    stopping.tell(lambda: front.drain(stopping.reason or "stopping"))
    stopping.install()
    side: HttpServer | None = None
    server: HttpServer | None = None
    serving: threading.Thread | None = None
    try:
        # The port is bound and served at once: `/healthz` answers while the worker starts,
        # `/readyz` says it is starting, and a command sent meanwhile is recorded and acked
        # like any other, and answered once the worker takes work.
        if mode is Mode.SOCKET:
            try:  # no Slack requests come over HTTP: only load balancers and Prometheus
                side = front.side_server(door=door)
            except OSError as exc:
                out.print(f"[red]cannot serve /healthz and /metrics on port {slack.port}: {exc}[/]")
                return 2
            threading.Thread(target=side.run, name="http", daemon=True).start()
        else:
            try:
                server = front.http_server(door=door)
            except (ValueError, OSError) as exc:
                out.print(f"[red]cannot start the Slack front: {exc}[/]")
                return 2
            serving = threading.Thread(
                target=_until_ended, args=(server.run, stopping), name="http", daemon=True
            )
            serving.start()  # signals stay with this thread: uvicorn takes none off a thread
            out.print(
                f"chatops: Slack HTTP mode on {slack.host}:{server.port}{EVENTS_PATH} "
                "(health: /healthz, ready: /readyz, metrics: /metrics)"
            )
        problem = worker.start()
        if problem is not None and not stopping.stopped:
            out.print(f"[red]cannot start: the worker process cannot run commands: {problem}[/]")
            waiting = 0
            with contextlib.suppress(ChatOpsError):
                waiting = front.queue.unfinished(FRONTS)
            if waiting:
                out.print(
                    f"{waiting} command(s) recorded meanwhile wait in the state database: "
                    "the next bot that starts on it answers them"
                )
            return 2
        # What start-up built (Bolt, SQLAlchemy, the migrations) lives as long as the front:
        # kept out of the collector, a full collection no longer walks it (40 ms and more
        # under load, paid by every ack waiting behind it on the event loop).
        gc.collect()
        gc.freeze()
        if side is not None:
            out.print(
                f"chatops: Slack Socket Mode (health: /healthz, ready: /readyz, metrics: "
                f"/metrics on {slack.host}:{side.port})"
            )
            front.serve_socket_mode(stopping)  # until stopping: the link is closed then
        else:
            stopping.wait()
        log.info("%s: taking nothing more; the worker hands over what it runs", stopping.reason)
    finally:
        if server is not None and serving is not None:
            server.close()  # the port closes; requests under way are answered first
            serving.join(30)
        worker.close(within=HANDOVER_S + 10)
        if side is not None:
            side.close()
    log.info("the front stopped")
    exit_clean(0)


def _stopped_early(stopping: Stopping, log: logging.Logger) -> int:
    log.info("%s before the front served: it ends with nothing started", stopping.reason)
    return 0


def _load_the_front() -> None:
    import uvicorn  # noqa: F401

    import bot.slack.app  # noqa: F401
    import core.store.jobs  # noqa: F401


def exit_clean(code: int) -> NoReturn:
    """End this process now that everything of ours has stopped and said so: the log and
    the console flushed, the interpreter's own teardown skipped. Library threads still
    running in C code at that teardown (Socket Mode's) made a front that had stopped cleanly
    end with SIGSEGV now and then, so its supervisor saw a crash."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _until_ended(serve: Callable[[], None], stopping: Stopping) -> None:
    try:
        serve()
    finally:
        stopping.stop("stopping (the HTTP server ended)")


def configure_logging() -> None:
    """Log lines to stderr, each scrubbed of credentials and server paths first."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_log_filter()
