"""The Slack worker process: runs the jobs its front recorded, and operations nobody holds.

Started by the front (`WorkerProcess`), with `--front http` or `--front socket`: the front's
mode. Its first line on stdout says whether it could start (`{"ready": true}`, or
`{"failed": reason}` and exit code 2: a corrupt state database, a missing CML key, wrong
settings); after that each line on stdin is a nudge to look for jobs now. Once ready it logs
the readiness checks in one paragraph, Slack's for the front's mode included: they load
MLflow, which the front never imports. Jobs and operations come from the state database, so
whatever a dead worker held is taken again by the next. When stdin closes (the front stops,
or died) or on SIGTERM or SIGINT, it hands what it runs over at the next step boundary and
exits (`bot.process`).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import threading
from argparse import ArgumentParser
from typing import TextIO

from pydantic import ValidationError
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import snapshots
from bot.arenas import few_arenas
from bot.check import log_readiness
from bot.process import HANDOVER_S, Background, background, slack_work
from bot.slack.settings import Mode, SlackSettings
from bot.stopping import Stopping
from core import metrics
from core.config import Settings
from core.errors import ChatOpsError
from core.mlflow_imports import registry_only
from core.runtime import Runtime
from core.scrub import install_log_filter


def why_not(exc: BaseException) -> str:
    """Why the worker cannot start, in words safe to show anyone (no secret, no value)."""
    if isinstance(exc, ChatOpsError):
        return exc.message
    if isinstance(exc, ValidationError):
        wrong = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        return f"the settings are wrong: {wrong}"
    if isinstance(exc, SlackApiError):
        return f"Slack refused the bot token ({exc.response.get('error')})"
    if isinstance(exc, SlackClientError):
        return f"Slack cannot be reached ({type(exc).__name__})"
    return f"an unexpected {type(exc).__name__} while starting"


def _say(out: TextIO, **status: object) -> None:
    out.write(json.dumps(status) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bot.slack.worker")
    parser.add_argument(
        "--front",
        type=Mode,
        choices=[Mode.HTTP, Mode.SOCKET],
        default=None,
        help="the mode of the front that started it (default: as the Slack settings say)",
    )
    args = parser.parse_args(argv)
    few_arenas()  # before any thread: its RSS stays flat over thousands of jobs
    # Only status lines may reach the front through stdout: anything a library prints from
    # the first moment on goes to stderr (the log) instead, file descriptor and all.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    faulthandler.enable()  # a crash in a library's C code leaves its Python stack in the log
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    install_log_filter()
    log = logging.getLogger("chatops.slack")
    # SIGINT (Ctrl-C reaches the front's whole group) and SIGTERM alike: hand over and exit;
    # the front is told first, so that it starts no other worker if it is stopping too
    stopping = Stopping().install()
    stopping.tell(lambda: _say(out, stopping=True))
    try:
        slack = SlackSettings()
        slack.register_secrets()
        if slack.bot_token is None:
            raise ChatOpsError("SLACK_BOT_TOKEN is not set")
        settings = Settings()
        if not settings.serves_locally:
            # it only reads and writes the registry (the model-server runtime, started only
            # for a local environment, loads models): MLflow without pandas and scipy
            registry_only()
        metrics.share(settings.state_dir)  # counted where the front's /metrics reads
        runtime = Runtime(settings)
    except Exception as exc:
        reason = why_not(exc)
        log.error("the worker cannot start: %s", reason)
        _say(out, failed=reason)
        return 2
    try:
        work = slack_work(runtime, slack)
        work.groups.check()  # a workspace without user groups is reported now, not at first use
    except Exception as exc:
        reason = why_not(exc)
        log.error("the worker cannot start: %s", reason)
        _say(out, failed=reason)
        runtime.close()
        return 2
    # The model-server runtime is started first, at normal priority: model servers come from
    # it, so they keep it. Then acks, which have a deadline, go first when the front and this
    # worker both want the CPU: this thread lowers its priority, and every thread it starts
    # from now on has it too (on Linux a thread's priority is its own, inherited at start).
    if settings.serves_locally:
        runtime.zygote.prewarm()
    os.nice(10)
    # Work is taken at once, and the front is told it is ready then: commands are answered
    # while the registry opens and the runtime warms (a deploy waits for the runtime, a
    # status does not); a worker started after another died resumes what that one left.
    # The front learns whose leases to end first, should this worker die right away.
    running = background(runtime, work=work, slack=slack)
    _say(out, taking=True, owner=running.owner)
    running.start()
    # each line on stdin is a nudge; its end (the front closed it, or died) means stop
    threading.Thread(target=_nudges, args=(running, stopping), name="nudges", daemon=True).start()
    _say(out, ready=True, owner=running.owner)
    runtime.warm_up(wait=True)
    snapshots.install("worker")  # CHATOPS_TRACEMALLOC: what it allocates from now on is traced
    # one paragraph in the log on what is not ready, Slack's checks for the front's mode too
    log_readiness(settings, slack, args.front or slack.mode)
    stopping.wait()
    held = len(runtime.leases.held)
    log.info("%s: handing over what this worker runs (%d operation(s))", stopping.reason, held)
    if not running.hand_over(HANDOVER_S):
        log.warning(
            "some operations were still mid-step after %.0f s: left all the same", HANDOVER_S
        )
    runtime.close()
    log.info("the worker stopped")
    return 0


def _nudges(running: Background, stopping: Stopping) -> None:
    for _line in sys.stdin:
        running.nudge()
    stopping.stop("stopping (the front closed the link)")


if __name__ == "__main__":
    sys.exit(main())
