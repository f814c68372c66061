"""How a bot process stops: SIGTERM and SIGINT alike, noted at once (the standard library
only: a front takes the signals from its first milliseconds, before it imports anything)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("chatops")


class Stopping:
    """Whether, and why, this process is stopping: SIGTERM and SIGINT alike, or whatever
    else ends it (the front closing a worker's stdin). `install()` takes both signals."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = threading.Event()
        self._told: list[Callable[[], None]] = []

    def install(self) -> Stopping:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop(f"stopping ({signal.Signals(signum).name})")

    def tell(self, quick: Callable[[], None]) -> None:
        """Call `quick` when stopping, at once when stopping already (it must not block: it
        may run in a signal handler; and a signal at the wrong moment may call it twice)."""
        self._told.append(quick)
        if self.reason is not None:
            quick()

    def stop(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        for quick in self._told:
            try:
                quick()
            except Exception:  # in a signal handler: nothing may escape into the main thread
                log.warning("stopping: telling %r failed", quick)
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
