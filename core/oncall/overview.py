"""What one person sees on opening the bot (the Slack App Home): what serves in every
environment, the requests they may decide, and their own recent requests and operations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.admission.roles import Actor
from core.events import EndpointStatus, Refusal
from core.store.models import ApprovalRow, Operation

if TYPE_CHECKING:
    from core.runtime import Runtime


@dataclass(frozen=True)
class Overview:
    endpoints: list[EndpointStatus]
    to_decide: list[ApprovalRow]
    requests: list[ApprovalRow]
    operations: list[Operation]
    # why the endpoints could not be listed, if they could not
    problem: str = ""


def overview(core: Runtime, actor: Actor, *, limit: int = 5) -> Overview:
    """Everything `actor` is shown, each list newest first and at most `limit` long (the
    requests to decide: twice that)."""
    found = core.deployer.status(env=None, endpoint=None)
    endpoints, problem = ([], found.text) if isinstance(found, Refusal) else (found, "")
    mine = [op for op in core.repos.operations.recent(limit=200) if op.requested_by == actor.shown]
    return Overview(
        endpoints=endpoints,
        to_decide=core.approvals.decidable(actor, limit=2 * limit),
        requests=core.approvals.asked_by(actor, limit=limit),
        operations=mine[:limit],
        problem=problem,
    )
