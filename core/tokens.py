"""Personal API tokens: what lets a user's own scripts and notebooks (MLflow's `mlflow
deployments` through the bot's HTTP API) act as that user, with that user's roles.

A token is `chatops_` and a random secret, shown once to the user who asked for it; only its
SHA-256 is stored (`TokenRepository`), with its id, its owner, when it was made, last used,
revoked, and when it expires. The recognisable prefix lets the scrubber mask any token that
would reach a text, wherever it came from.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from core.admission.roles import Actor
from core.events import Refusal
from core.marks import command
from core.scrub import register_secret
from core.store.db import Database
from core.store.models import TokenRow, aware
from core.store.repos.tokens import TokenRepository

PREFIX = "chatops_"
# the shape of a secret this module makes: anything else is refused without a lookup
SHAPE = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{44,64}}")
# where a reply's text shows the secret: a front that can show it to the asker alone puts
# it there as the very last step (every text is scrubbed before, which would mask it)
SHOWN_ONCE = "[[token]]"
LISTED = 20


@dataclass(frozen=True)
class Issued:
    """A new token: `secret` is shown this once, to its owner alone."""

    id: str
    secret: str
    expires_at: datetime
    ok: bool = True

    @property
    def text(self) -> str:
        return (
            f"Your API token {self.id} (shown once, keep it like a password; it expires "
            f"{self.expires_at:%Y-%m-%d}):\n`{SHOWN_ONCE}`\n"
            "Use it as CHATOPS_TOKEN with `mlflow deployments … -t chatops:/<env>`; "
            "it acts as you, with your roles. Revoke it with "
            f"`{command('token revoke ' + self.id)}`."
        )


@dataclass(frozen=True)
class TokenInfo:
    id: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expired: bool = False  # its expiry is past: it opens nothing


@dataclass(frozen=True)
class TokenList:
    """The asker's own tokens: never a secret, never another user's."""

    tokens: list[TokenInfo]
    more: int = 0  # how many were left out (those that still work are listed first)
    ok: bool = True

    @property
    def text(self) -> str:
        if not self.tokens:
            return f"You have no API tokens: `{command('token')}` makes one."
        lines = ["Your API tokens:"]
        for t in self.tokens:
            used = (
                f"last used {t.last_used_at:%Y-%m-%d %H:%M} UTC" if t.last_used_at else "never used"
            )
            state = (
                f"revoked {t.revoked_at:%Y-%m-%d %H:%M} UTC"
                if t.revoked_at
                else f"expired {t.expires_at:%Y-%m-%d}"
                if t.expired
                else f"expires {t.expires_at:%Y-%m-%d}"
            )
            lines.append(f"  {t.id}  made {t.created_at:%Y-%m-%d %H:%M} UTC, {used}, {state}")
        if self.more:
            lines.append(f"  … and {self.more} more not shown (revoked or expired ones last).")
        return "\n".join(lines)


@dataclass(frozen=True)
class Revoked:
    id: str
    ok: bool = True

    @property
    def text(self) -> str:
        return f"API token {self.id} is revoked: it opens nothing from now on."


@dataclass(frozen=True)
class Holder:
    """Whose a token is: its id (for rate limits and logs) and its owner's user id."""

    token_id: str
    user_id: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    """Issues, lists, revokes and checks personal API tokens; each user sees only their own."""

    def __init__(self, repo: TokenRepository, *, ttl_s: float) -> None:
        self.repo = repo
        self.ttl_s = ttl_s

    def issue(self, actor: Actor) -> Issued:
        """A new token for `actor`: the secret is in the answer only, never stored."""
        secret = PREFIX + secrets.token_urlsafe(36)
        register_secret(secret)  # from now on no text of this process shows it
        row = self.repo.add(user_id=actor.id, secret_hash=digest(secret), ttl_s=self.ttl_s)
        return Issued(id=row.id, secret=secret, expires_at=aware(row.expires_at))

    def listed(self, actor: Actor) -> TokenList:
        now = self.repo.db.now()
        infos = [_info(r, now) for r in self.repo.of_user(actor.id)]
        # those that still work first (newest first, as stored), then the rest
        infos.sort(key=lambda t: t.revoked_at is not None or t.expired)
        return TokenList(infos[:LISTED], more=max(0, len(infos) - LISTED))

    def revoke(self, actor: Actor, token_id: str) -> Revoked | Refusal:
        if self.repo.revoke(token_id, user_id=actor.id):
            return Revoked(token_id)
        return Refusal(
            f"You have no API token {token_id} that still works: "
            f"`{command('token list')}` shows yours."
        )

    def holder(self, secret: str) -> Holder | None:
        """Whose `secret` is, when it is a token that is neither revoked nor expired (its last
        use recorded now); None for anything else, with no reason given."""
        if not SHAPE.fullmatch(secret):
            return None
        row = self.repo.use(digest(secret))
        if row is None:
            return None
        return Holder(token_id=row.id, user_id=row.user_id)


def _info(row: TokenRow, now: datetime) -> TokenInfo:
    return TokenInfo(
        expired=aware(row.expires_at) <= now,
        id=row.id,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        last_used_at=aware(row.last_used_at) if row.last_used_at else None,
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )


def tokens_in(db: Database) -> Tokens:
    """The tokens of the state database `db`, to check them (a front that checks them has
    only the database, not a runtime; the bot process that issues them knows their TTL)."""
    return Tokens(TokenRepository(db), ttl_s=0.0)
