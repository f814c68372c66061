"""Slash-command listeners: the same for HTTP and Socket Mode.

Each acks at once and does nothing slow itself. Text that does not parse, and /help, are
answered in the ack (ephemeral); /status runs on the query pool and answers through
`respond`; deploys and scales run on the operation pool, reporting into one thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from types import ModuleType
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import messages
from bot.slack.blocks import section
from bot.slack.blocks import status as status_blocks
from bot.slack.poster import Poster
from bot.slack.reporter import ThreadReporter
from commands import help as help_command
from commands import status as status_command
from commands.base import Context, HelpText, StatusReport, UsageError
from commands.registry import COMMANDS, parse
from core.events import NullReporter, Outcome, Refusal
from core.runtime import Runtime

log = logging.getLogger("chatops.slack")


class Listeners:
    def __init__(
        self,
        *,
        runtime: Runtime,
        poster: Poster,
        executor: Executor,
        bot_name: str = "chatops",
        min_interval: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.poster = poster
        self.executor = executor
        self.bot_name = bot_name
        self.min_interval = min_interval
        self.queries = ThreadPoolExecutor(max_workers=4, thread_name_prefix="query")
        self.in_flight: set[Future[None]] = set()
        self._guard = threading.Lock()

    def register(self, app: App) -> None:
        for name in COMMANDS:
            app.command(f"/{name}")(self.on_command)

    def on_command(self, ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        name, text = command.get("command", ""), command.get("text") or ""
        found = parse(name, text)
        if isinstance(found, UsageError):
            ack(response_type="ephemeral", text=found.text)
            return
        module, parsed = found
        if module is help_command:
            ack(response_type="ephemeral", text=help_command.describe(parsed.command))
            return
        # queued before the ack, so whoever saw the ack can also see the work under way
        if module is status_command:
            self._submit(self.queries, self._status, module, parsed, command, respond)
        else:
            self._submit(self.executor, self._operation, module, parsed, command, respond)
        ack()

    def _submit(self, pool: Executor, fn: Callable[..., None], *args: Any) -> None:
        future = pool.submit(fn, *args)
        with self._guard:
            self.in_flight.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._guard:
            self.in_flight.discard(future)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for the operations under way; True when none is left."""
        with self._guard:
            pending = set(self.in_flight)
        return not wait(pending, timeout=timeout).not_done

    def _context(self, command: dict[str, Any], reporter: Any) -> Context:
        line = f"{command.get('command', '')} {command.get('text') or ''}".strip()
        actor = f"<@{command.get('user_id', '')}>"
        return Context(deployer=self.runtime.deployer, actor=actor, reporter=reporter, text=line)

    def _status(
        self, module: ModuleType, parsed: Any, command: dict[str, Any], respond: Respond
    ) -> None:
        reply = module.run(parsed, self._context(command, NullReporter()))
        if isinstance(reply, StatusReport):
            text, blocks = status_blocks(reply)
            kind = "in_channel" if parsed.public else "ephemeral"
            respond(response_type=kind, text=text, blocks=blocks)
        else:
            respond(response_type="ephemeral", text=reply.text)

    def _operation(
        self, module: ModuleType, parsed: Any, command: dict[str, Any], respond: Respond
    ) -> None:
        line = f"{command.get('command', '')} {command.get('text') or ''}".strip()
        reporter = ThreadReporter(
            poster=self.poster,
            channel=command.get("channel_id", ""),
            user=command.get("user_id", ""),
            command=line,
            respond=respond,
            bot_name=self.bot_name,
            min_interval=self.min_interval,
        )
        try:
            reply = module.run(parsed, self._context(command, reporter))
        except Exception as exc:
            log.exception("%s failed unexpectedly", line)
            respond(
                response_type="ephemeral",
                text=messages.INTERNAL_ERROR.format(command=line, error=type(exc).__name__),
            )
            return
        if isinstance(reply, (Refusal, UsageError, HelpText)):
            respond(response_type="ephemeral", text=reply.text)
        elif isinstance(reply, Outcome) and reporter.ts is None:
            # the thread could not be opened anywhere: the requester still gets the end
            respond(response_type="ephemeral", text=reply.text, blocks=[section(reply.text)])
