"""Creating on CML at most once.

A create whose answer is lost (a timeout or dropped connection once sent, a 5xx, a 429) may
have been done all the same; sending it again could make a second registered version,
model, build or deployment. So the HTTP layer never repeats a create on its own: it raises
`CMLOutcomeUnknown`, and `Creator.once` looks for what the create named or tagged (a model
by name, a build by its registered version, a deployment by the bot's id for it), a few
times over a short while, before creating again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from core.targets.base import Step
from core.targets.cml.errors import CMLOutcomeUnknown
from core.targets.cml.poller import Poller

T = TypeVar("T")


class Creator:
    """Runs creates: at most `tries` of them, each after the one before was looked for and
    not found; the look-up polls for up to `settle_s` (the poller's longest wait by default),
    as a workspace may show what it created a moment after it answered."""

    def __init__(self, *, poller: Poller, tries: int = 3, settle_s: float | None = None) -> None:
        self.poller = poller
        self.tries = max(1, tries)
        self.settle_s = poller.max_s if settle_s is None else settle_s

    def once(
        self, what: str, create: Callable[[], T], find: Callable[[], T | None], step: Step
    ) -> T:
        """What `create()` made, or, after a create whose outcome is unknown, what `find()`
        finds; `CMLOutcomeUnknown` when no try said and nothing was found."""
        last: CMLOutcomeUnknown | None = None
        for _ in range(self.tries):
            try:
                return create()
            except CMLOutcomeUnknown as exc:
                last = exc
            step.say(
                f"CML did not say whether it created {what}; looking for it before asking again"
            )
            polled = self.poller.until(
                find, lambda found: found is not None, timeout_s=self.settle_s
            )
            if polled.value is not None:
                step.say(f"CML had created {what}: using it")
                return polled.value
        assert last is not None
        raise CMLOutcomeUnknown(
            f"could not create {what}: {self.tries} tries went unanswered and none of them "
            f"shows in the workspace (last: {last.message})",
            status_code=last.status_code,
            cml_message=last.cml_message,
            method=last.method,
            path=last.path,
        )
