"""Fail points: named places where a test can make this process die at once, as a crash
would (`os._exit`), to check what the bot owes people survives it.

Armed only by the environment, for tests: `CHATOPS_FAILPOINTS` names the points
(comma-separated), and `CHATOPS_FAILPOINTS_ONCE` a file created when one fires, so the
process that takes the work over (started with the same environment) goes on past it. With
neither set, `hit` costs one dictionary look-up.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("chatops.core")

ARMED = "CHATOPS_FAILPOINTS"
ONCE = "CHATOPS_FAILPOINTS_ONCE"
EXIT_CODE = 86  # what a process that died at a fail point exits with

# every point, so a test can go through them all; `hit` refuses a name not listed here
POINTS = (
    "step.recorded",  # an operation's step was recorded, its work not begun
    "operation.ended",  # the transaction ending an operation committed, nothing told yet
    "operation.told",  # its final word was sent, not yet marked sent
    "answer.recorded",  # a job's answer was recorded, not yet sent
    "answer.sent",  # a job's answer was sent, not yet marked sent
    "job.answered",  # a job ran and answered, its end not yet recorded
)


def hit(name: str) -> None:
    """Die here if a test armed `name` (once, when a once-file is named)."""
    assert name in POINTS, name
    armed = os.environ.get(ARMED)
    if not armed or name not in armed.split(","):
        return
    once = os.environ.get(ONCE)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    log.warning("fail point %s: this process dies here (armed by %s)", name, ARMED)
    logging.shutdown()
    os._exit(EXIT_CODE)
