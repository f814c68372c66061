"""Creating on CML once per step, whatever the gateway does.

A create whose answer is lost (a timeout or dropped connection once sent, a 5xx, a 429) may
have been done all the same, or may be done later still: a gateway can hold a request past
the client's timeout and then pass it on. Sending it again could make a second registered
version, model, build or deployment. So the HTTP layer never repeats a create on its own (it
raises `CMLOutcomeUnknown`), and neither does `Creator.once`: it says in the thread that it
waits for a create whose outcome is unknown, then looks for what the create named or tagged
(a model by its name, a build by its registered version, a deployment by the bot's id for
it) until the step's own timeout. Nothing found by then fails the step, having sent one
create; a later try (another command, or the operation resumed) looks before it creates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from core.errors import TargetUnavailable
from core.targets.base import Step
from core.targets.cml.errors import CMLOutcomeUnknown
from core.targets.cml.poller import Poller

T = TypeVar("T")


class Creator:
    """Runs creates, each sent once; after one whose outcome is unknown, polls for what it
    made until the step's timeout."""

    def __init__(self, *, poller: Poller) -> None:
        self.poller = poller

    def once(
        self,
        what: str,
        create: Callable[[], T],
        find: Callable[[], T | None],
        step: Step,
        *,
        timeout_s: float,
        sent_before: bool = False,
    ) -> T:
        """What `create()` made, or, after a create whose outcome is unknown, what `find()`
        finds within `timeout_s`; `CMLOutcomeUnknown` when nothing shows by then. `create`
        is called once, and not at all when an earlier run of the step `sent_before`."""
        if sent_before:
            unknown = CMLOutcomeUnknown(
                "the bot stopped before it heard the answer", status_code=None
            )
            step.say(
                f"{what[:1].upper()}{what[1:]} was asked of CML before the bot restarted, and its "
                f"outcome is unknown; waiting up to {timeout_s:g} s for it to show up (it is "
                "not sent again)"
            )
        else:
            try:
                return create()
            except CMLOutcomeUnknown as exc:
                unknown = exc
            step.say(
                f"CML did not say whether it created {what}; waiting up to {timeout_s:g} s "
                "for it to show up (a create whose outcome is unknown is not sent again)"
            )

        def look() -> T | None:
            try:
                return find()
            except TargetUnavailable:  # the workspace may be as slow to list as to create
                return None

        polled = self.poller.until(look, lambda found: found is not None, timeout_s=timeout_s)
        if polled.value is not None:
            step.say(f"CML had created {what}: using it")
            return polled.value
        raise CMLOutcomeUnknown(
            f"could not create {what}: CML did not say whether it did ({unknown.message}) "
            f"and nothing of it showed within {timeout_s:g} s; it was sent once and not "
            "again, so nothing else was made: try again once the workspace answers (a "
            "late create is found then, not repeated)",
            status_code=unknown.status_code,
            cml_message=unknown.cml_message,
            method=unknown.method,
            path=unknown.path,
        )
