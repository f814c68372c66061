"""The front's doorkeeper, over real sockets: where it binds (read as the settings read it),
what it answers itself, and what it keeps, unread, for the app."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.slack.app import HttpServer
from bot.slack.transport.doorkeeper import Address, Doorkeeper, wanted
from bot.slack.transport.http import read_body
from bot.slack.transport.routes import answer
from tests.conftest import free_port_range

HTTP = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret"}


def test_it_binds_only_for_a_front_its_settings_will_start(tmp_path: Path) -> None:
    none = tmp_path / "absent.env"
    assert wanted("auto", {**HTTP, "PORT": "4100"}, none) == Address("0.0.0.0", 4100, "http")
    socket_mode = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    assert wanted("auto", socket_mode, none) == Address("0.0.0.0", 3000, "socket")
    # names in any case, SLACK_PORT as well as PORT, the host as set
    assert wanted("http", {**HTTP, "slack_port": "4101", "SLACK_HOST": "127.0.0.1"}, none) == (
        Address("127.0.0.1", 4101, "http")
    )
    # fail closed: no signing secret, no token, the console, a port that is no port
    assert wanted("http", {"SLACK_BOT_TOKEN": "xoxb-1"}, none) is None
    assert wanted("http", {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": ""}, none) is None
    assert wanted("auto", {"SLACK_SIGNING_SECRET": "s3cret"}, none) is None
    assert wanted("socket", HTTP, none) is None
    assert wanted("console", HTTP, none) is None
    assert wanted("auto", {**HTTP, "PORT": "http"}, none) is None
    assert wanted("auto", {**HTTP, "PORT": "70000"}, none) is None


def test_dotenv_counts_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# the bot\nexport SLACK_BOT_TOKEN=xoxb-1\nSLACK_SIGNING_SECRET='s3cret'\n"
        'PORT="4200"  \nSLACK_HOST=127.0.0.1 # loopback\n'
    )
    assert wanted("auto", {}, dotenv) == Address("127.0.0.1", 4200, "http")
    assert wanted("auto", {"PORT": "4201"}, dotenv) == Address("127.0.0.1", 4201, "http")


@pytest.fixture
def door() -> Iterator[Doorkeeper]:
    reasons = ["the front is starting"]
    keeper = Doorkeeper(Address("127.0.0.1", 0, "http"), unready=lambda: reasons[-1])
    yield keeper
    keeper.close()


def port(door: Doorkeeper) -> int:
    return int(door.socket.getsockname()[1])


def ask(door: Doorkeeper, method: str, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port(door), timeout=10)
    connection.request(method, path)
    return connection.getresponse()


def test_it_answers_health_and_readiness_itself(door: Doorkeeper) -> None:
    healthz = ask(door, "GET", "/healthz")
    assert (healthz.status, healthz.read()) == (200, b'{"ok": true, "mode": "http"}')
    readyz = ask(door, "GET", "/readyz?verbose=1")
    assert readyz.status == 503
    assert readyz.read() == b'{"ready": false, "reason": "the front is starting"}'
    head = ask(door, "HEAD", "/healthz")
    assert (head.status, head.read()) == (200, b"")


def test_a_request_line_sent_in_pieces_is_still_a_health_check(door: Doorkeeper) -> None:
    client = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
    client.sendall(b"GET /hea")
    client.sendall(b"lthz HTTP/1.1\r\nHost: x\r\n")
    client.sendall(b"\r\n")
    answer = http.client.HTTPResponse(client)
    answer.begin()
    assert answer.status == 200
    client.close()


def test_everything_else_is_kept_unread_for_the_app(door: Doorkeeper) -> None:
    command = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    other = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    post = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
    post.sendall(command)
    metrics = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
    metrics.sendall(other)
    silent = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
    # a health check after them is answered: the door is not blocked by what it keeps
    assert ask(door, "GET", "/healthz").status == 200

    listening, held = door.hand_over()
    try:
        assert listening is door.socket
        by_client = {conn.getpeername(): conn for conn in held}
        assert set(by_client) == {c.getsockname() for c in (post, metrics, silent)}
        # every byte is still there for the app, and nothing was answered
        assert by_client[post.getsockname()].recv(4096) == command
        assert by_client[metrics.getsockname()].recv(4096) == other
        post.setblocking(False)
        with pytest.raises(BlockingIOError):
            post.recv(1)
        # a connection that comes now waits in the backlog, for the app to accept it
        late = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
        door.close()  # what the front does on its way out: the app's socket stays open
        listening.setblocking(True)
        accepted, _ = listening.accept()
        accepted.close()
        late.close()
    finally:
        for conn in held:
            conn.close()
        for client in (post, metrics, silent):
            client.close()


def test_a_front_that_cannot_start_closes_the_port_and_what_it_held(door: Doorkeeper) -> None:
    client = socket.create_connection(("127.0.0.1", port(door)), timeout=10)
    client.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert ask(door, "GET", "/healthz").status == 200
    at = port(door)
    door.close()
    with contextlib.suppress(ConnectionResetError):
        assert client.recv(100) == b""  # never answered: Slack sends it again
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", at), timeout=10)
    client.close()


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = await read_body(receive, 1 << 10)
    await answer(send, 200, b"app: " + (body or b""))


def test_uvicorn_answers_what_the_door_held_on_the_same_port(door: Doorkeeper) -> None:
    at = port(door)
    client = socket.create_connection(("127.0.0.1", at), timeout=10)
    client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert ask(door, "GET", "/healthz").status == 200
    server = HttpServer(_echo, host="127.0.0.1", port=at, door=door)
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    try:
        assert server.port == at
        held = http.client.HTTPResponse(client)
        held.begin()
        assert (held.status, held.read()) == (200, b"app: hello")
        # the app serves the port from now on, health checks too (here: the echo app)
        later = httpx.post(f"http://127.0.0.1:{at}/healthz", content=b"x", timeout=10)
        assert later.text == "app: x"
    finally:
        server.close()
        serving.join(30)
        client.close()


def test_a_port_the_settings_did_not_choose_is_given_back() -> None:
    guessed, chosen = free_port_range(2)
    door = Doorkeeper(Address("127.0.0.1", guessed, "http"), unready=lambda: "starting")
    server = HttpServer(_echo, host="127.0.0.1", port=chosen, door=door)
    try:
        assert server.port == chosen
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", guessed), timeout=10)
    finally:
        server.socket.close()
