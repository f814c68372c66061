"""The Slack worker process: runs the jobs its front recorded, and operations nobody holds.

Started by the front (`WorkerProcess`). Its first line on stdout says whether it could start
(`{"ready": true}`, or `{"failed": reason}` and exit code 2: a corrupt state database, a
missing CML key, wrong settings); after that each line on stdin is a nudge to look for jobs
now. Jobs and operations come from the state database, so whatever a dead worker held is
taken again by the next. Stops when stdin closes, after finishing what it holds.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TextIO

from pydantic import ValidationError
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.dispatch import JobTaker
from bot.slack.oncall import OnCall
from bot.slack.poster import Poster, web_client
from bot.slack.settings import SlackSettings
from bot.slack.work import Work
from core import metrics
from core.config import Settings
from core.errors import ChatOpsError
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


def main() -> int:
    # Only status lines may reach the front through stdout: anything a library prints from
    # the first moment on goes to stderr (the log) instead, file descriptor and all.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    install_log_filter()
    log = logging.getLogger("chatops.slack")
    try:
        slack = SlackSettings()
        slack.register_secrets()
        if slack.bot_token is None:
            raise ChatOpsError("SLACK_BOT_TOKEN is not set")
        settings = Settings()
        metrics.share(settings.state_dir)  # counted where the front's /metrics reads
        runtime = Runtime(settings)
    except Exception as exc:
        reason = why_not(exc)
        log.error("the worker cannot start: %s", reason)
        _say(out, failed=reason)
        return 2
    try:
        client = web_client(token=slack.bot_token.get_secret_value(), base_url=slack.api_url)
        bot_name = str(client.auth_test().get("user") or "chatops")
        work = Work(
            runtime=runtime,
            poster=Poster(client),
            bot_name=bot_name,
            min_interval=slack.update_interval,
            command=slack.command,
            announce_channel=slack.announce_channel,
        )
        work.groups.check()  # a workspace without user groups is reported now, not at first use
    except Exception as exc:
        reason = why_not(exc)
        log.error("the worker cannot start: %s", reason)
        _say(out, failed=reason)
        runtime.close()
        return 2
    # ready only once a command would be answered at once: the model-server runtime
    # started (seconds, at normal priority) before the front says it can run commands
    runtime.warm_up(wait=True)
    _say(out, ready=True)
    # Acks have a deadline and deploys do not: when both want the CPU, the front goes first.
    # Model servers come from the runtime started above, so they keep normal priority.
    os.nice(10)
    settings = runtime.settings
    taker = JobTaker(
        queue=runtime.jobs,
        run=work.run,
        workers=slack.workers,
        lease_s=settings.lease_s,
        poll_s=settings.runner_poll_s,
    ).start()
    # operations left by a bot process that died, and queued ones, run here too
    runner = runtime.worker(
        reporter_for=work.reporter_for,
        fronts=frozenset({"", "slack"}),
        workers=slack.workers,
    ).start()
    registry = work.announcer.watch()  # registry events: polled, or the MLflow webhook registered
    # watch windows after switches, and endpoints that go down between rollouts
    watcher = runtime.watcher(
        alerts=OnCall(poster=work.poster, channel=slack.oncall_channel, people=work.people),
        runner=runner,
        fronts=frozenset({"", "slack"}),
    ).start()
    try:
        for _line in sys.stdin:
            taker.nudge()
    finally:
        if registry is not None:
            registry.stop()
        taker.close()
        watcher.stop()
        runner.stop()
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
