"""Replies of the command table as the HTTP API (`/api/v1`) answers them: JSON, with the text
a Slack user would read (commands as this front names them, people by name), and the HTTP
status a client acts on. Refusals are 403 and bad arguments 400, their text as in Slack; an
operation that failed is 409."""

from __future__ import annotations

from typing import Any

from commands.base import Reply, StatusReport, UsageError
from commands.naming import Naming
from core import marks
from core.admission.approvals import ApprovalRequested, Decided
from core.events import EndpointStatus, Outcome, Refusal
from core.scrub import scrub


def text_of(text: str, naming: Naming) -> str:
    """Core text as an API client reads it: commands as typed in Slack, no mrkdwn."""
    return scrub(
        marks.render(text, command=naming.typed, person=lambda name: name, other=lambda t: t)
    )


def endpoint(ep: EndpointStatus) -> dict[str, Any]:
    """One deployment as MLflow's `get_deployment` and `list_deployments` show it."""
    return {
        "name": ep.name,
        "env": ep.env,
        "model": ep.model,
        "version": ep.version,
        "model_uri": f"models:/{ep.model}/{ep.version}",
        "state": "up" if ep.up else "down",
        "url": ep.url,
        "target": ep.target,
        "resources": ep.resources,
        "replicas": ep.replicas,
        "since": ep.since.isoformat(),
        "detail": ep.detail,
        "underway": ep.underway,
    }


def answer(
    reply: Reply, naming: Naming, *, call: str, name: str = "", link: str = ""
) -> dict[str, Any]:
    """`{"status": <HTTP status>, "body": <JSON>}` for `reply` to an API `call`; `link`: the
    Slack thread where the operation reported."""
    if isinstance(reply, UsageError):
        return _error(400, reply.problem, naming)
    if isinstance(reply, Refusal):
        return _error(403, reply.text, naming)
    if isinstance(reply, StatusReport):
        found = [endpoint(ep) for ep in reply.endpoints]
        if call == "get":
            one = [f for f in found if f["name"] == name]
            if not one:
                return _error(404, f"No deployment {name} in {reply.env}.", naming)
            return {"status": 200, "body": one[0]}
        return {"status": 200, "body": {"deployments": found}}
    if isinstance(reply, ApprovalRequested):
        a = reply.approval
        body = {
            "state": "pending",
            "request": a.id,
            "name": a.model,
            "model_uri": f"models:/{a.model}/{a.version}",
            "env": a.env,
            "expires_at": a.expires_at.isoformat(),
            "message": text_of(reply.text, naming),
            "link": link,
        }
        return {"status": 202, "body": body}
    if isinstance(reply, Decided) and reply.outcome is not None:
        return answer(reply.outcome, naming, call=call, name=name, link=link)
    if isinstance(reply, Outcome):
        body = {
            "state": "succeeded" if reply.ok else "failed",
            "operation": reply.operation,
            "name": name,
            "url": reply.url,
            "message": text_of(reply.text, naming),
            "link": link,
        }
        return {"status": 200 if reply.ok else 409, "body": body}
    return {"status": 200, "body": {"message": text_of(str(getattr(reply, "text", "")), naming)}}


def _error(status: int, text: str, naming: Naming) -> dict[str, Any]:
    return {"status": status, "body": {"error": text_of(text, naming)}}
