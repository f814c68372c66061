"""A reply lost on its way back: the work is done, the client never hears of it."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class ReplyLost(Exception):
    """Raised after an operation did its work, when the fault switches say its reply is lost."""


class BrokenReply(Response):
    """The head of a 200 and the first bytes of its body, then the connection closes (the
    server returns without finishing the answer, so it drops the connection): a client
    sees the connection fail after it sent its request."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": ', "more_body": True})
