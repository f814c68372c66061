"""Counting API calls: a transport that counts the requests each thread sends through it.

An operation runs in one thread from its first step to its last, so the count of that thread
since the operation began is the operation's number of API calls (retries included: each is
one more request the workspace had to answer).
"""

from __future__ import annotations

import threading

import httpx


class CallCounter(httpx.BaseTransport):
    """Wraps the transport of a `CMLClient` (`CMLClient(transport=CallCounter())`)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        # /status checks up to 32 endpoints at once: keep that many connections open
        self._inner = inner or httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._total = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.tally()
        return self._inner.handle_request(request)

    def tally(self) -> None:
        """One more request sent by this thread (a client not sending through here says so)."""
        self._local.count = getattr(self._local, "count", 0) + 1
        with self._lock:
            self._total += 1

    def close(self) -> None:
        self._inner.close()

    def begin(self) -> None:
        """A new operation starts in this thread: its count starts from zero."""
        self._local.count = 0

    @property
    def this_thread(self) -> int:
        """Requests sent by the calling thread since its operation began."""
        count: int = getattr(self._local, "count", 0)
        return count

    @property
    def total(self) -> int:
        """Requests sent through this transport by every thread."""
        with self._lock:
            return self._total
