"""Fail points: named places where a test can make this process die at once, as a crash
would (`os._exit`), to check that what the bot owes people survives it.

Armed only through the environment, for tests: `CHATOPS_FAILPOINTS` names a directory, and
a point fires when a file of its name is there. The process that fires it removes the file
first, so exactly one process dies there per file, and the one that takes the work over goes
on past it; a test arms a point in a running bot by creating its file. With the variable
unset, `hit` costs one look-up in the environment.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("chatops.core")

ARMED = "CHATOPS_FAILPOINTS"
EXIT_CODE = 86  # what a process that died at a fail point exits with

# every point, so a test can go through them all; `hit` refuses a name not listed here
POINTS = (
    "step.recorded",  # an operation's step was recorded, its work not begun
    "traffic.switched",  # traffic moved to the new deployment; what serves not yet recorded
    "operation.switched",  # traffic moved and what serves was recorded; no write-back yet
    "registry.written",  # the write-back to the registry was made and recorded; no end yet
    "operation.ended",  # the transaction ending an operation committed, nothing told yet
    "operation.told",  # its final word was sent, not yet marked sent
    "answer.recorded",  # a job's answer was recorded, not yet sent
    "answer.sent",  # a job's answer was sent, not yet marked sent
    "job.answered",  # a job ran and answered, its end not yet recorded
)


def hit(name: str) -> None:
    """Die here if a test armed `name`."""
    assert name in POINTS, name
    armed = os.environ.get(ARMED)
    if not armed:
        return
    try:
        os.remove(os.path.join(armed, name))  # one process takes it: the one that dies
    except FileNotFoundError:
        return
    log.warning("fail point %s: this process dies here (armed by %s)", name, ARMED)
    logging.shutdown()
    os._exit(EXIT_CODE)
