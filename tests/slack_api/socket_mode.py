"""Slack's Socket Mode server, played on 127.0.0.1 by the `websockets` library: it greets each
connection with `hello`, sends envelopes on the newest one, records every acknowledgement by
`envelope_id`, and can end a connection as Slack does (a `disconnect` message), or lose it
(TCP closed with no close frame; a peer that stops reading).

    server = SocketModeServer().start()
    slack_api.socket_url = server.url      # what apps.connections.open answers
    ...
    server.wait_connections(1)
    sent = server.send(envelope)
    latency = server.wait_ack(sent, timeout=3)

Everything runs on one event loop in a thread; the methods are called from the test's thread.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


@dataclass
class Link:
    """One client connection: when it opened and, if it did, closed (time.monotonic())."""

    number: int
    socket: ServerConnection
    opened_at: float
    closed_at: float | None = None
    received: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Ack:
    envelope_id: str
    at: float
    link: int
    payload: dict[str, Any] | None


class SocketModeServer:
    """See the module docstring."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.acks: list[Ack] = []
        self.sent_at: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SocketModeServer:
        self._thread.start()
        self._server = self._run(self._listen())
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self

    def stop(self) -> None:
        for link in self.links:  # a silent one would never finish a closing handshake
            self._loop.call_soon_threadsafe(link.socket.transport.abort)
        if self._server is not None:
            self._server.close()
            self._run(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=emulated"

    # -- what a test does ---------------------------------------------------------------------
    def wait_connections(self, count: int, timeout: float = 60) -> Link:
        """The `count`-th connection, once it is open (and greeted)."""
        self._wait(lambda: len(self.links) >= count, timeout, f"connection #{count}")
        return self.links[count - 1]

    def send(self, kind: str, payload: dict[str, Any], **extra: Any) -> str:
        """An envelope of `kind` on the newest connection; its envelope_id."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, **extra}
        link = self.links[-1]
        with self._changed:
            self.sent_at[envelope_id] = time.monotonic()
        self._run(link.socket.send(json.dumps(envelope)))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10) -> float:
        """Seconds from sending the envelope to its acknowledgement."""
        self._wait(lambda: self.acked(envelope_id), timeout, f"the ack of {envelope_id}")
        (ack,) = self.acked(envelope_id)
        return ack.at - self.sent_at[envelope_id]

    def acked(self, envelope_id: str) -> list[Ack]:
        with self._changed:
            return [a for a in self.acks if a.envelope_id == envelope_id]

    def disconnect(self, reason: str) -> None:
        """Slack's `disconnect` message on the newest connection (which stays open, as Slack
        keeps it a while: the client is to open another)."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "emulated"}}
        self._run(self.links[-1].socket.send(json.dumps(message)))

    def drop(self) -> None:
        """The newest connection's TCP closed with no close frame, as a crashed peer's is."""
        link = self.links[-1]
        self._loop.call_soon_threadsafe(link.socket.transport.close)

    def go_silent(self) -> None:
        """The newest connection stays open but its peer reads nothing more (answers no ping),
        as when a link dies with no packet to say so."""
        link = self.links[-1]
        self._loop.call_soon_threadsafe(link.socket.transport.pause_reading)

    # -- serving ------------------------------------------------------------------------------
    async def _serve(self, socket: ServerConnection) -> None:
        link = Link(number=len(self.links) + 1, socket=socket, opened_at=time.monotonic())
        hello = {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "emulated", "approximate_connection_time": 18060},
            "connection_info": {"app_id": "A0001"},
        }
        await socket.send(json.dumps(hello))
        with self._changed:
            self.links.append(link)
            self._changed.notify_all()
        try:
            async for raw in socket:
                message = json.loads(raw)
                link.received.append(message)
                if "envelope_id" in message:
                    ack = Ack(
                        envelope_id=str(message["envelope_id"]),
                        at=time.monotonic(),
                        link=link.number,
                        payload=message.get("payload"),
                    )
                    with self._changed:
                        self.acks.append(ack)
                        self._changed.notify_all()
        except Exception:  # a dropped link ends as it ends: the test looks at what arrived
            pass
        finally:
            with self._changed:
                link.closed_at = time.monotonic()
                self._changed.notify_all()

    async def _listen(self) -> Server:
        return await serve(self._serve, "127.0.0.1", 0)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def _wait(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"not seen within {timeout} s: {what}")
