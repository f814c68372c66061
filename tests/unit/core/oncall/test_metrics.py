"""`/metrics` as Prometheus reads it (prometheus_client's own parser), from a state database on
each backend: ended operations by kind, environment and outcome with their durations, and
what waits; route templates and Slack error codes that cannot grow without bound."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from core import metrics
from core.metrics.page import Exposition
from core.outbox import ANNOUNCE, ANSWER, Outbox
from core.store.jobs import JobQueue
from core.store.models import Hold, OperationState
from core.store.repos import Repositories
from tests.clock import FakeClock


class Asked(BaseModel):
    kind: str = "command"
    text: str


def scrape(repos: Repositories) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the page: (name, sorted labels) -> value."""
    text = Exposition(repos.db).render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def deploy(repos: Repositories, clock: FakeClock, *, env: str, took_s: float, ok: bool) -> None:
    op = repos.operations.enqueue(
        kind="deploy", env=env, endpoint="iris", requested_by="U1", command="/deploy iris v1"
    )
    taken = repos.operations.claim("p1", lease_s=30)
    assert taken is not None and taken.id == op.id
    clock.advance(took_s)
    state = OperationState.SUCCEEDED if ok else OperationState.FAILED
    assert repos.operations.finish(op.id, state, hold=Hold.of(taken))


def test_ended_operations_are_counted_by_kind_env_and_outcome_with_their_durations(
    repos: Repositories, clock: FakeClock
) -> None:
    deploy(repos, clock, env="dev", took_s=42, ok=True)
    deploy(repos, clock, env="dev", took_s=400, ok=True)
    deploy(repos, clock, env="prod", took_s=3, ok=False)
    page = scrape(repos)

    ok = {"env": "dev", "kind": "deploy", "outcome": "succeeded"}
    failed = {"env": "prod", "kind": "deploy", "outcome": "failed"}
    assert page[key("chatops_operations_total", **ok)] == 2
    assert page[key("chatops_operations_total", **failed)] == 1
    assert key("chatops_operations_total", **{**ok, "outcome": "failed"}) not in page
    took = "chatops_operation_duration_seconds"
    assert page[key(f"{took}_count", **ok)] == 2
    assert abs(page[key(f"{took}_sum", **ok)] - 442) < 1
    within = {le: page[key(f"{took}_bucket", **ok, le=le)] for le in ("30.0", "60.0", "600.0")}
    assert within == {"30.0": 0, "60.0": 1, "600.0": 2}
    assert page[key(f"{took}_bucket", **ok, le="+Inf")] == 2
    assert page[key(f"{took}_bucket", **failed, le="5.0")] == 1
    assert page[("chatops_state_database_up", ())] == 1


def test_what_waits_is_shown_with_the_age_of_the_oldest(
    repos: Repositories, clock: FakeClock
) -> None:
    for n in range(3):
        repos.operations.enqueue(
            kind="scale", env="prod", endpoint=f"e{n}", requested_by="U1", command="/scale"
        )
    assert repos.operations.claim("p1", lease_s=30) is not None
    queue = JobQueue(repos.db)
    for n in range(2):
        queue.record(key=f"k{n}", front="slack", job=Asked(text="x"), kind="command")
    clock.advance(90)
    page = scrape(repos)

    by_state = {
        state: page[key("chatops_operations_unfinished", env="prod", kind="scale", state=state)]
        for state in ("queued", "running")
    }
    assert by_state == {"queued": 2, "running": 1}
    assert 90 <= page[("chatops_operation_oldest_queued_seconds", ())] < 120
    assert page[key("chatops_slack_jobs", kind="command", state="queued")] == 2
    assert 90 <= page[("chatops_slack_job_oldest_queued_seconds", ())] < 120


def test_what_is_owed_and_unsent_is_shown_with_the_age_of_the_oldest(
    repos: Repositories, clock: FakeClock
) -> None:
    owed = Outbox(repos.outbox, owner="bot-a", lease_s=30, max_attempts=3)
    sent = owed.owe(ANSWER, {}, front="slack", job_id="job-1")
    owed.sent(sent)
    owed.owe(ANSWER, {}, front="slack", job_id="job-2")
    clock.advance(60)
    owed.owe(ANNOUNCE, {}, front="slack")
    page = scrape(repos)
    assert page[key("chatops_owed_unsent", kind="answer")] == 1
    assert page[key("chatops_owed_unsent", kind="announce")] == 1
    assert 60 <= page[("chatops_owed_oldest_unsent_seconds", ())] < 90


def test_an_empty_database_shows_nothing_waiting(repos: Repositories) -> None:
    page = scrape(repos)
    assert page[("chatops_operation_oldest_queued_seconds", ())] == 0
    assert page[("chatops_slack_job_oldest_queued_seconds", ())] == 0
    assert page[("chatops_owed_oldest_unsent_seconds", ())] == 0
    assert not [name for name, _ in page if name == "chatops_operations_total"]


def test_cml_paths_become_route_templates() -> None:
    route = metrics.cml_route
    assert route("/api/v2/projects/p-1/models/m-2/builds/b-3/deployments/d-4:stop") == (
        "/api/v2/projects/{id}/models/{id}/builds/{id}/deployments/{id}:stop"
    )
    assert route("/api/v2/registry/models/r-1/versions/v-9") == (
        "/api/v2/registry/models/{id}/versions/{id}"
    )
    assert route("/api/v2/projects?search_filter=x") == "/api/v2/projects"
    # whatever else a path holds is an id, not a new label value
    assert route("/api/v2/projects/user:secret@host/x") == "/api/v2/projects/{id}/{id}"


def test_slack_error_codes_that_are_not_codes_are_other(repos: Repositories) -> None:
    metrics.slack_call("chat.postMessage", "channel_not_found")
    metrics.slack_call("chat.postMessage", "https://hooks.example/T0/xoxb-123 oops")
    metrics.slack_call("<script>", "ratelimited")
    page = scrape(repos)
    errors = {
        labels: value
        for (name, labels), value in page.items()
        if name == "chatops_slack_api_errors_total"
    }
    assert errors[(("error", "channel_not_found"), ("method", "chat.postMessage"))] >= 1
    assert errors[(("error", "other"), ("method", "chat.postMessage"))] >= 1
    assert errors[(("error", "ratelimited"), ("method", "other"))] >= 1
    assert all("xoxb" not in v and "https" not in v for labels in errors for _, v in labels)


def test_cml_answers_an_alert_tells_apart_keep_their_status(repos: Repositories) -> None:
    before = scrape(repos)
    for status in (401, 418, 503, None):
        metrics.cml_call("get", "/api/v2/projects/p-1", status, 0.2)
    after = scrape(repos)
    route = "/api/v2/projects/{id}"

    def added(status: str) -> float:
        sample = key("chatops_cml_requests_total", method="GET", route=route, status=status)
        return after.get(sample, 0) - before.get(sample, 0)

    assert {s: added(s) for s in ("401", "4xx", "5xx", "unanswered", "2xx")} == {
        "401": 1,
        "4xx": 1,
        "5xx": 1,
        "unanswered": 1,
        "2xx": 0,
    }
