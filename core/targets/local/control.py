"""Talking to an endpoint host over its control socket, and looking at its port from outside."""

from __future__ import annotations

import json
import socket
from typing import Any

from core.errors import TargetUnavailable


def call(path: str, request: dict[str, Any], *, what: str) -> dict[str, Any] | None:
    """The host's reply, or None when no host listens on `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(path)
            conn.sendall((json.dumps(request) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buf += chunk
    except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
        # reset: a host that was told to shut down exits without answering what it had not
        # read yet, as one that closed the connection (no reply) or no longer listens
        return None
    except OSError as exc:
        raise TargetUnavailable(f"the server host of {what} did not answer: {exc}") from None
    reply: dict[str, Any] = json.loads(buf)
    return reply


def accepts(port: int) -> bool:
    """Whether anything takes connections on 127.0.0.1:`port` (a listener nobody accepts
    on counts: that is a client left hanging)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return True


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def who_holds(port: int) -> str:
    """` (held by pid N, name)` for the process listening on `port`, when it can be seen."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
                return f" (held by pid {conn.pid}, {psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return ""
