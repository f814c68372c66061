"""The Slack worker process: runs the commands its front acked, one JSON line each.

Started by the front (`ProcessDispatcher`); reads `{"id", "command"}` lines on stdin, runs each
on its pools, writes `{"id", "done": true}` when it ends. Its Runner takes queued operations
and those whose bot process died. Stops when stdin closes, after finishing what it holds.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from concurrent.futures import Future
from typing import Any

from bot.slack.dispatch import ThreadDispatcher
from bot.slack.poster import Poster, web_client
from bot.slack.settings import SlackSettings
from bot.slack.work import Work
from core.config import Settings
from core.runtime import Runtime
from core.scrub import install_log_filter


def main() -> None:
    # Only replies may reach the front through stdout: anything a library prints from the
    # first moment on goes to stderr (the log) instead, file descriptor and all.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    install_log_filter()
    slack = SlackSettings()
    slack.register_secrets()
    assert slack.bot_token is not None, "SLACK_BOT_TOKEN is not set"
    runtime = Runtime(Settings())
    runtime.warm_up()  # starts the model-server runtime now, at normal priority
    # Acks have a deadline and deploys do not: when both want the CPU, the front goes first.
    # Model servers come from the runtime started above, so they keep normal priority.
    os.nice(10)
    client = web_client(token=slack.bot_token.get_secret_value(), base_url=slack.api_url)
    bot_name = str(client.auth_test().get("user") or "chatops")
    work = Work(
        runtime=runtime,
        poster=Poster(client),
        bot_name=bot_name,
        min_interval=slack.update_interval,
    )
    work.groups.check()  # a workspace without user groups is reported now, not at first use
    dispatcher = ThreadDispatcher(work, workers=slack.workers)
    # operations left by a bot process that died, and queued ones, run here too
    runner = runtime.worker(
        reporter_for=work.reporter_for,
        fronts=frozenset({"", "slack"}),
        workers=slack.workers,
    ).start()
    write = threading.Lock()

    def done(request_id: int) -> Any:
        def callback(_: Future[None]) -> None:
            with write:
                out.write(json.dumps({"id": request_id, "done": True}) + "\n")
                out.flush()

        return callback

    try:
        for line in sys.stdin:
            request = json.loads(line)
            dispatcher.submit(request["command"]).add_done_callback(done(int(request["id"])))
    finally:
        runner.stop()
        dispatcher.close()
        runtime.close()


if __name__ == "__main__":
    main()
