"""Personal API tokens as stored: only a hash, each user's own, revocable, expiring by the
clock."""

from __future__ import annotations

from sqlalchemy import select

from core.admission.roles import Actor
from core.store.models import TokenRow
from core.store.repos import Repositories
from core.tokens import PREFIX, Tokens
from tests.clock import FakeClock

ANN, BOB = Actor(id="U0ANN", name="ann"), Actor(id="U0BOB", name="bob")


def test_a_token_opens_as_its_owner_until_revoked_and_only_its_hash_is_kept(
    repos: Repositories,
) -> None:
    tokens = Tokens(repos.tokens, ttl_s=3600)
    issued = tokens.issue(ANN)
    assert issued.secret.startswith(PREFIX) and len(issued.secret) > 50

    holder = tokens.holder(issued.secret)
    assert holder is not None and (holder.token_id, holder.user_id) == (issued.id, ANN.id)
    with repos.db.session() as s:
        stored = [tuple(map(str, row)) for row in s.execute(select(TokenRow.__table__))]
    assert stored and not any(issued.secret in value for row in stored for value in row)

    (listed,) = tokens.listed(ANN).tokens
    assert listed.id == issued.id and listed.last_used_at is not None
    assert issued.secret not in tokens.listed(ANN).text
    assert tokens.listed(BOB).tokens == []

    # another user cannot revoke it, nor learn that it exists
    refused = tokens.revoke(BOB, issued.id)
    assert not refused.ok and "You have no API token" in refused.text
    assert tokens.holder(issued.secret) is not None
    assert tokens.revoke(ANN, issued.id).ok
    assert tokens.holder(issued.secret) is None
    assert not tokens.revoke(ANN, issued.id).ok  # once
    assert "revoked" in tokens.listed(ANN).text


def test_forged_and_expired_tokens_open_nothing(repos: Repositories, clock: FakeClock) -> None:
    tokens = Tokens(repos.tokens, ttl_s=3600)
    issued = tokens.issue(ANN)
    forged = issued.secret[:-4] + ("AAAA" if not issued.secret.endswith("AAAA") else "BBBB")
    for secret in (forged, "", "chatops_", "Bearer x", issued.secret + "x", issued.id):
        assert tokens.holder(secret) is None, secret
    clock.advance(3599)
    assert tokens.holder(issued.secret) is not None
    clock.advance(2)
    assert tokens.holder(issued.secret) is None
