"""The Slack front: one Bolt app, served over HTTP (`/slack/events`, `/healthz`, `/readyz`,
`/metrics`) or Socket Mode (with `/healthz`, `/readyz` and `/metrics` on PORT).

Both modes register the same listeners on the same app; only the transport differs. HTTP goes
through Bolt's ASGI adapter under uvicorn: a listener here only parses and records a job (one
short INSERT), so dispatching it on the event loop costs about a millisecond.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from bot.slack.intake.dispatch import Dispatcher, JobTaker, WorkerProcess
from bot.slack.intake.listeners import Listeners
from bot.slack.posting.poster import web_client
from bot.slack.settings import NO_SECRET, SlackSettings
from bot.slack.transport.api import PREFIX as API_PREFIX
from bot.slack.transport.api import Api, RateLimit
from bot.slack.transport.http import SignedOnly
from bot.slack.transport.routes import Routes, health, metrics, readiness
from bot.slack.transport.webhook import WEBHOOK_PATH, registry_webhook
from commands.naming import Naming
from core.metrics.page import Exposition
from core.tokens import tokens_in

if TYPE_CHECKING:
    from bot.slack.transport.doorkeeper import Doorkeeper
    from bot.slack.transport.socket_mode import AckingSocketModeHandler
    from bot.stopping import Stopping
    from core.runtime import Runtime
    from core.store.jobs import JobQueue

log = logging.getLogger("chatops.slack")

EVENTS_PATH = "/slack/events"


class SlackFront:
    """The Bolt app and its transports. Acked requests are recorded in `queue` and run where
    the dispatcher takes them: by default a worker process; with `runtime`, threads of this
    process (the queue is then the runtime's database)."""

    def __init__(
        self,
        settings: SlackSettings,
        *,
        runtime: Runtime | None = None,
        queue: JobQueue | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        if settings.bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        settings.register_secrets()
        self.settings = settings
        self.client = web_client(
            token=settings.bot_token.get_secret_value(), base_url=settings.api_url
        )
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
        # Listeners only parse and record, so the ack can wait for them: this saves
        # Bolt's polling for the ack (up to 10 ms a request). The signature is checked once,
        # at the door (`SignedOnly`), not again by Bolt.
        self.app = App(
            client=self.client,
            signing_secret=secret,
            request_verification_enabled=False,
            process_before_response=True,
        )
        # why this front takes nothing more (SIGTERM, SIGINT): `/readyz` says it from then on
        self.stopping: str | None = None
        # each API token's calls, over every route table this front serves
        self.api_limit = RateLimit(settings.api_calls_per_minute)

        if runtime is not None:
            from bot.process import slack_work

            queue = queue or runtime.jobs
            if dispatcher is None:
                work = slack_work(runtime, settings)
                dispatcher = JobTaker(
                    queue=queue,
                    run=work.run,
                    send_owed=work.send_owed,
                    workers=settings.workers,
                    lease_s=runtime.settings.lease_s,
                    poll_s=runtime.settings.runner_poll_s,
                ).start()
        if queue is None:
            raise ValueError("a Slack front needs the state database (a queue) or a runtime")
        self.queue = queue
        self.dispatcher = dispatcher or WorkerProcess(queue=queue)
        self.listeners = Listeners(
            queue, self.dispatcher, command=settings.command, direct=settings.direct_commands
        )
        self.listeners.register(self.app)

    # -- HTTP mode -------------------------------------------------------------------------
    def routes(self, mode: str) -> Routes:
        """What the bot serves over HTTP in every mode: `/healthz` (the process answers),
        `/readyz` (it can run commands: 503 with the reason when not) for load balancers,
        `/metrics` for Prometheus (see `bot.slack.transport.routes`), `/mlflow/webhook` for MLflow's
        registry events; 404 for the rest."""
        token = self.settings.metrics_token
        routes = Routes()
        routes.add("/healthz", health(mode))
        routes.add("/readyz", readiness(lambda: self.stopping or self.dispatcher.unready))
        routes.add(
            "/metrics",
            metrics(Exposition.of(self.queue), token=token.get_secret_value() if token else None),
        )
        routes.add(WEBHOOK_PATH, registry_webhook(self.queue, self.dispatcher))
        routes.add_prefix(API_PREFIX, self.api())
        return routes

    def api(self) -> Api:
        """The HTTP API (`/api/v1/…`) for MLflow's `mlflow deployments -t chatops:/<env>`:
        each call the command of its token's owner, run by this front's workers."""
        settings = self.settings
        channel = settings.api_channel or settings.announce_channel
        return Api(
            queue=self.queue,
            dispatcher=self.dispatcher,
            tokens=tokens_in(self.queue.db),
            naming=Naming(settings.command, settings.direct_commands),
            limit=self.api_limit,
            channel=channel,
            wait_s=settings.api_wait_s,
        )

    def asgi(self) -> Callable[..., Awaitable[None]]:
        """The HTTP front: `routes("http")` and `/slack/events` for Bolt (only what Slack
        signed, for a team served). Without a signing secret: ValueError."""
        if self.settings.signing_secret is None:
            raise ValueError(NO_SECRET)
        bolt = SignedOnly(
            self.app,
            path=EVENTS_PATH,
            secret=self.settings.signing_secret.get_secret_value(),
            teams=self.teams(),
        )
        return self.routes("http").add(EVENTS_PATH, bolt)

    def teams(self) -> set[str]:
        """Teams whose requests are served: as configured, else the bot token's own."""
        configured = {t.strip() for t in self.settings.team_ids.split(",") if t.strip()}
        if configured:
            return configured
        try:
            found = self.client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise ValueError(
                f"Slack refused the bot token ({error}), so its team is unknown; "
                "set SLACK_TEAM_IDS or a valid SLACK_BOT_TOKEN"
            ) from None
        return {str(found[k]) for k in ("team_id", "enterprise_id") if found.get(k)}

    def http_server(
        self, *, host: str | None = None, port: int | None = None, door: Doorkeeper | None = None
    ) -> HttpServer:
        """The HTTP front, bound (or on the port `door` held) but not yet serving: `.run()`
        blocks, `.close()` stops."""
        return HttpServer(
            self.asgi(),
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            door=door,
        )

    def side_server(
        self, *, host: str | None = None, port: int | None = None, door: Doorkeeper | None = None
    ) -> HttpServer:
        """Socket Mode's HTTP server: `routes("socket")`, without `/slack/events` (events come
        over the socket), bound (or on the port `door` held) but not yet serving."""
        return HttpServer(
            self.routes("socket"),
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            door=door,
        )

    # -- Socket Mode -----------------------------------------------------------------------
    def drain(self, reason: str) -> None:
        """Take nothing more: `/readyz` says `reason` (safe in a signal handler)."""
        self.stopping = reason

    def serve_socket_mode(self, stopping: Stopping) -> None:
        """Socket Mode until `stopping`: then the link is closed (Slack sends what comes next
        to another connection of the app) and its sessions with it, and this returns."""
        asyncio.run(self._socket_mode(stopping))

    async def _socket_mode(self, stopping: Stopping) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        stopping.tell(lambda: loop.call_soon_threadsafe(stop.set))
        handler = self.socket_mode_handler()
        try:
            if not stopping.stopped:
                await handler.connect_async()
                await stop.wait()
        finally:
            await handler.close_async()

    def socket_mode_handler(self) -> AckingSocketModeHandler:
        """Bolt's aiohttp Socket Mode adapter; to be made inside a running event loop.

        Not Bolt's default (slack_sdk's built-in client): measured against a Socket Mode
        server, that one acked the first envelope after every `disconnect` 3 s late (past
        Slack's deadline), and noticed a connection lost without a close frame only after
        15-60 s, spinning a core meanwhile. Listeners only record a job (about a millisecond),
        so running them on the event loop keeps every ack quick."""
        # aiohttp and Bolt's Socket Mode adapter: loaded in Socket Mode only (12 MB)
        from slack_sdk.web.async_client import AsyncWebClient

        from bot.slack.transport.socket_mode import SOCKET_PING_S, AckingSocketModeHandler

        if self.settings.app_token is None:
            raise ValueError("SLACK_APP_TOKEN is not set")
        return AckingSocketModeHandler(
            self.app,
            self.settings.app_token.get_secret_value(),
            # only for apps.connections.open; listeners use the app's own client
            web_client=AsyncWebClient(base_url=self.settings.api_url),
            ping_interval=SOCKET_PING_S,
        )

    def close(self) -> None:
        self.dispatcher.close()


class HttpServer:
    """uvicorn on a socket bound at once, so the port is known before serving (port 0 too);
    or on the socket a `Doorkeeper` held for it since the process started, with the requests
    it kept (they are this server's first)."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        host: str,
        port: int,
        door: Doorkeeper | None = None,
    ) -> None:
        import uvicorn

        self.held: list[socket.socket] = []
        if door is not None and door.serves(host, port):
            self.socket, self.held = door.hand_over()
        else:
            if door is not None:  # the settings chose another port than the door guessed
                door.close()
            self.socket = socket.create_server((host, port), reuse_port=False)
            # accepted connections inherit it: without, small acks wait on delayed TCP ACKs
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        if not self.held:
            self.server.run(sockets=[self.socket])
            return
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            runner.run(self._serve_held())

    async def _serve_held(self) -> None:
        # uvicorn takes the listening socket; the connections the door accepted become its
        # connections as if it had accepted them (its protocol, its shutdown), served first
        config = self.server.config
        if not config.loaded:
            config.load()
        loop = asyncio.get_running_loop()
        held, self.held = self.held, []
        for conn in held:
            try:
                await loop.connect_accepted_socket(
                    lambda: config.http_protocol_class(  # type: ignore[call-arg]
                        config=config, server_state=self.server.server_state, app_state={}
                    ),
                    conn,
                )
            except OSError:  # the client left meanwhile
                conn.close()
        await self.server.serve(sockets=[self.socket])

    def close(self) -> None:
        self.server.should_exit = True
