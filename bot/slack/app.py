"""The Slack front: one Bolt app, served over HTTP (`/slack/events`, `/healthz`) or Socket Mode.

Both modes register the same listeners on the same app; only the transport differs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.slack.listeners import Listeners
from bot.slack.poster import Poster, web_client
from bot.slack.settings import SlackSettings
from core.runtime import Runtime

log = logging.getLogger("chatops.slack")

EVENTS_PATH = "/slack/events"


class SlackFront:
    def __init__(
        self, runtime: Runtime, settings: SlackSettings, *, min_interval: float = 1.0
    ) -> None:
        if settings.bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self.runtime = runtime
        self.settings = settings
        self.client = web_client(
            token=settings.bot_token.get_secret_value(), base_url=settings.api_url
        )
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
        # Listeners only parse and hand work to pools, so the ack can wait for them: this
        # saves Bolt's polling for the ack (up to 10 ms a request).
        self.app = App(
            client=self.client,
            signing_secret=secret,
            request_verification_enabled=secret is not None,
            process_before_response=True,
        )
        bot_name = str(self.client.auth_test().get("user") or "chatops")
        self.executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="operation"
        )
        self.listeners = Listeners(
            runtime=runtime,
            poster=Poster(self.client),
            executor=self.executor,
            bot_name=bot_name,
            min_interval=min_interval,
        )
        self.listeners.register(self.app)

    # -- HTTP mode -------------------------------------------------------------------------
    def wsgi(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        handler = SlackRequestHandler(self.app, path=EVENTS_PATH)

        def application(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                body = json.dumps({"ok": True, "mode": "http"}).encode()
                start_response(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
            return handler(environ, start_response)

        return application

    def http_server(self, *, host: str | None = None, port: int | None = None) -> Any:
        """A waitress server, not yet running: call `.run()` (blocks) and `.close()`."""
        from waitress import create_server

        return create_server(
            self.wsgi(),
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            threads=16,
            ident="chatops",
        )

    # -- Socket Mode -----------------------------------------------------------------------
    def socket_mode_handler(self) -> SocketModeHandler:
        if self.settings.app_token is None:
            raise ValueError("SLACK_APP_TOKEN is not set")
        return SocketModeHandler(
            self.app, self.settings.app_token.get_secret_value(), web_client=self.client
        )

    def close(self) -> None:
        self.listeners.queries.shutdown(wait=True)
        self.executor.shutdown(wait=True)
