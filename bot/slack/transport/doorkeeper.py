"""The front's port from its first milliseconds: bound before anything heavy is imported,
`/healthz` and `/readyz` answered at once, every other request kept for the app.

A restarted front spends most of a second importing its settings, SQLAlchemy, Bolt and
uvicorn. Meanwhile a `Doorkeeper` (the standard library only) holds the port: a platform's
health check sees the process up (`/healthz` 200) and not yet ready (`/readyz` 503), and a
Slack request that arrives is accepted but neither read nor answered. The bytes stay in the
kernel (the request line is only peeked at) until the app takes the very same listening
socket and those held connections (`hand_over`), and answers them as it answers any other:
nothing is acked that the app did not record, and nothing is refused for a port gap. A front
that cannot start closes the door (`close`): the held connections end unanswered (Slack tries
again), and the port with them.

Whether to bind at all is read from the command line and the environment (and `.env`) as the
settings will read them (`wanted`); when they say otherwise the front binds as it always did.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# a request line is far shorter; a connection that sends this much without one is the app's
PEEK = 8192
# a health check's request line arrives in one segment; one sent slower is the app's after this
DECIDE_S = 2.0
HEALTH = frozenset({"/healthz", "/readyz"})
STARTING = "the front is starting"  # what `/readyz` says until the app answers it


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    mode: str  # "http" or "socket", as `/healthz` says it


def wanted(mode: str, environ: Mapping[str, str], dotenv: Path = Path(".env")) -> Address | None:
    """Where a Slack front started with `--mode mode` ("auto", "http", "socket", "console")
    will listen, read as its settings read it (the environment first, then `.env`; names in
    any case); None when it will not start one (no token, no signing secret: it fails closed
    with the settings' own words) or the port is no port (the settings say why)."""
    values = {k.lower(): v for k, v in _dotenv(dotenv).items()}
    values.update({k.lower(): v for k, v in environ.items()})
    bot, app, secret = (
        bool(values.get(name))
        for name in ("slack_bot_token", "slack_app_token", "slack_signing_secret")
    )
    if mode == "auto":
        mode = "socket" if bot and app else "http" if bot and secret else "console"
    if not bot or mode == "console" or (mode == "http" and not secret):
        return None
    if mode == "socket" and not app:
        return None
    port = values.get("port", values.get("slack_port", "3000")).strip()
    if not port.isdigit() or int(port) > 65535:
        return None
    return Address(host=values.get("slack_host", "0.0.0.0"), port=int(port), mode=mode)


def _dotenv(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        name, sep, value = line.partition("=")
        if not sep or name.startswith("#"):
            continue
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #")[0].strip()
        found[name.strip()] = value
    return found


class Doorkeeper:
    """Holds `address`'s port until the app takes it: see the module docstring. `unready`
    says why `/readyz` is 503 (it may change: a signal while the front loads)."""

    def __init__(self, address: Address, *, unready: Callable[[], str]) -> None:
        self.address = address
        self.unready = unready
        self.socket = socket.create_server((address.host, address.port), reuse_port=False)
        # accepted connections inherit it: without, small acks wait on delayed TCP ACKs
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.setblocking(False)  # a connection reset before it is accepted: no wait
        self._held: list[socket.socket] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._ending = False
        self._handed = False
        self._thread = threading.Thread(target=self._serve, name="doorkeeper", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, address: Address | None, *, unready: Callable[[], str]) -> Doorkeeper | None:
        """A doorkeeper on `address`; None without one, or when the port cannot be bound now
        (the front then binds it as usual, and says why if it still cannot)."""
        if address is None:
            return None
        try:
            return cls(address, unready=unready)
        except OSError:
            return None

    def serves(self, host: str, port: int) -> bool:
        """Whether this is the port the settings chose."""
        bound = self.socket.getsockname()[1]
        return host == self.address.host and port in (bound, self.address.port) and not self._ending

    def hand_over(self) -> tuple[socket.socket, list[socket.socket]]:
        """Stop answering; the listening socket (connections not yet accepted wait in its
        backlog) and the connections accepted but not answered, their requests unread."""
        self._end()
        self._handed = True
        held, self._held = self._held, []
        return self.socket, held

    def close(self) -> None:
        """Stop answering and close the port and every connection held (idempotent); once
        handed over, they are the app's: nothing is closed."""
        self._end()
        for conn in self._held:
            conn.close()
        self._held = []
        if not self._handed:
            self.socket.close()

    def _end(self) -> None:
        if self._ending:
            return
        self._ending = True
        self._wake_w.send(b"x")
        self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    # -- the thread -----------------------------------------------------------------------
    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        # connections whose first line is not all there yet: peeked at again, not read
        undecided: dict[socket.socket, float] = {}
        try:
            while not self._ending:
                timeout = 0.01 if undecided else None
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        return
                    if key.fileobj is self.socket:
                        self._accept(selector)
                    else:
                        conn = key.fileobj
                        assert isinstance(conn, socket.socket)
                        selector.unregister(conn)
                        undecided[conn] = time.monotonic() + DECIDE_S
                for conn, deadline in list(undecided.items()):
                    if self._decide(conn, late=time.monotonic() > deadline):
                        del undecided[conn]
        finally:
            for key in list(selector.get_map().values()):
                if isinstance(key.fileobj, socket.socket) and key.fileobj not in (
                    self.socket,
                    self._wake_r,
                ):
                    self._held.append(key.fileobj)  # no byte came yet: the app waits for it
            self._held.extend(undecided)
            selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            conn, _ = self.socket.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError:  # out of descriptors: they wait in the backlog for the app
            return
        selector.register(conn, selectors.EVENT_READ)

    def _decide(self, conn: socket.socket, *, late: bool) -> bool:
        """Answer a health request, or keep the connection for the app; False: not yet."""
        try:
            seen = conn.recv(PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            seen = None
        except OSError:
            conn.close()
            return True
        if seen == b"":  # the client left before it asked
            conn.close()
            return True
        seen = seen or b""
        wait = not late and len(seen) < PEEK  # more may come: look again
        line, ended, _ = seen.partition(b"\r\n")
        if not ended and wait:
            return False
        parts = line.split(b" ")
        path = parts[1].split(b"?")[0].decode("latin-1") if len(parts) == 3 else ""
        if ended and parts[0] in (b"GET", b"HEAD") and path in HEALTH:
            if b"\r\n\r\n" in seen:
                self._answer(
                    conn, path, head=parts[0] == b"HEAD", length=seen.index(b"\r\n\r\n") + 4
                )
                return True
            if wait:
                return False
        self._held.append(conn)  # the app reads it: not a byte was taken
        return True

    def _answer(self, conn: socket.socket, path: str, *, head: bool, length: int) -> None:
        if path == "/healthz":
            status, body = "200 OK", {"ok": True, "mode": self.address.mode}
        else:
            status, body = "503 Service Unavailable", {"ready": False, "reason": self.unready()}
        data = json.dumps(body).encode()
        reply = (
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
        ).encode()
        try:
            conn.recv(length)  # the request, read: closing with it unread would reset
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(reply if head else reply + data)
        except OSError:
            pass
        finally:
            conn.close()
