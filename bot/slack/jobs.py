"""The requests the Slack front acknowledges, as typed jobs: a slash command, a button click.

The front records one of these in the state database before it acks (`core.jobs.JobQueue`);
the worker reads it back with `job_of` and runs it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

FRONT = "slack"


class _Slash(BaseModel):
    command: str
    text: str = ""
    user_id: str
    channel_id: str = ""
    response_url: str = ""

    @property
    def line(self) -> str:
        return f"{self.command} {self.text}".strip()


class SlashCommand(_Slash):
    """`/deploy iris v1` as Slack sent it (also `/approve <id>` typed by hand)."""

    kind: Literal["command"] = "command"


class Query(_Slash):
    """`/status`, `/history`: quick, never queued behind deploys."""

    kind: Literal["query"] = "query"


class ButtonClick(BaseModel):
    """Approve or Reject clicked on an approval request's message."""

    kind: Literal["decision"] = "decision"
    approve: bool
    request: str
    user_id: str
    channel_id: str = ""
    response_url: str = ""

    @property
    def line(self) -> str:
        return f"/{'approve' if self.approve else 'reject'} {self.request} (button)"


QUERIES = frozenset({"query"})
OPERATIONS = frozenset({"command", "decision"})
AnyJob = SlashCommand | Query | ButtonClick
_JOB: TypeAdapter[AnyJob] = TypeAdapter(Annotated[AnyJob, Field(discriminator="kind")])


def job_of(payload: dict[str, Any]) -> AnyJob:
    """The job a front recorded; ValueError (pydantic's) when it is not one."""
    return _JOB.validate_python(payload)
