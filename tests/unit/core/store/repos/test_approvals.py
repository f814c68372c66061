"""Approval requests as stored: open until their expiry by the clock, decided once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.store.models import ApprovalRow
from core.store.repos import Repositories
from tests.clock import FakeClock


def request(repos: Repositories, ttl_s: float = 3600) -> ApprovalRow:
    return repos.approvals.open(
        model="iris",
        version=3,
        env="prod",
        requester_id="U1",
        requester_name="dev",
        reason="better recall",
        command="/promote iris v3 to prod",
        ttl_s=ttl_s,
    )


@pytest.mark.parametrize("round_", range(3))
def test_one_of_eight_simultaneous_decisions_wins(repos: Repositories, round_: int) -> None:
    approval = request(repos)
    start = threading.Barrier(8)

    def click(n: int) -> bool:
        start.wait()
        state = "approved" if n % 2 else "rejected"
        return repos.approvals.decide(approval.id, state=state, by=f"admin-{n}", reason=str(n))

    with ThreadPoolExecutor(8) as pool_:
        results = list(pool_.map(click, range(8)))

    assert results.count(True) == 1
    winner = results.index(True)
    decided = repos.approvals.get(approval.id)
    assert decided is not None
    assert (decided.decided_by, decided.decision_reason) == (f"admin-{winner}", str(winner))
    assert decided.state == ("approved" if winner % 2 else "rejected")
    assert repos.approvals.decide(approval.id, state="approved", by="late", reason="") is False


def test_a_request_expires_by_the_clock(repos: Repositories, clock: FakeClock) -> None:
    row = request(repos, ttl_s=600)
    stored = repos.approvals.get(row.id)
    assert stored is not None and stored.state == "pending" and stored.where == {}
    clock.advance(599)
    assert repos.approvals.expired(stored) is False
    clock.advance(2)
    assert repos.approvals.expired(stored) is True


def test_where_a_front_shows_a_request_is_kept(repos: Repositories) -> None:
    row = request(repos)
    repos.approvals.set_where(row.id, {"channel": "C1", "ts": "17.5"})
    repos.approvals.set_where("apr-none", {"channel": "C2"})  # nothing to update
    stored = repos.approvals.get(row.id)
    assert stored is not None and stored.where == {"channel": "C1", "ts": "17.5"}
    assert repos.approvals.get("apr-none") is None
