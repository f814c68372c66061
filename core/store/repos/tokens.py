"""Personal API tokens as stored: the SHA-256 of each secret, whose it is, when it was made,
last used, revoked, and when it expires. The secret itself is never stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from core.store.db import Database, aware
from core.store.models import TokenRow, new_id


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, *, user_id: str, secret_hash: str, ttl_s: float) -> TokenRow:
        """A new token of `user_id`, valid for `ttl_s` from now."""
        now = self.db.now()
        row = TokenRow(
            id=new_id("tok"),
            user_id=user_id,
            secret_hash=secret_hash,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        with self.db.session() as s:
            s.add(row)
        return row

    def of_user(self, user_id: str) -> list[TokenRow]:
        """`user_id`'s tokens, newest first (revoked ones too: the list says so)."""
        query = (
            select(TokenRow)
            .where(TokenRow.user_id == user_id)
            .order_by(TokenRow.created_at.desc(), TokenRow.id)
        )
        with self.db.session() as s:
            return list(s.scalars(query))

    def revoke(self, token_id: str, *, user_id: str) -> bool:
        """Revoke `user_id`'s token `token_id`; False when it has no such token, or it was
        revoked already (another user's token is no such token)."""
        with self.db.session() as s:
            result = s.execute(
                update(TokenRow)
                .where(
                    TokenRow.id == token_id,
                    TokenRow.user_id == user_id,
                    TokenRow.revoked_at.is_(None),
                )
                .values(revoked_at=self.db.now())
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def use(self, secret_hash: str) -> TokenRow | None:
        """The token whose secret hashes to `secret_hash` if it is neither revoked nor
        expired, its last use now; None otherwise."""
        now = self.db.now()
        with self.db.session() as s:
            row = s.scalars(select(TokenRow).where(TokenRow.secret_hash == secret_hash)).first()
            if row is None or row.revoked_at is not None or aware(row.expires_at) <= now:
                return None
            row.last_used_at = now
            return row
