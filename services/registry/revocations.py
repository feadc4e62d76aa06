"""The token revocation list, kept in the registry's database.

Revocations name a token id (the "jti" claim) or a sandbox (every token it was given).
Each is kept until the revoked token would have expired anyway, then pruned. Servers read
the list through ListRevokedTokens and cache it (services.common.revocation).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import DateTime, String, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.common.auth import Caller, Role, TokenAuthority
from services.common.errors import (
    FailedPreconditionError,
    PermissionDeniedError,
    invalid_field,
)
from services.common.revocation import Revocation
from services.registry.models import Base

_MAX_ID = 128


class TokenRevocationRow(Base):
    __tablename__ = "registry_token_revocations"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(128), default="")
    sandbox_id: Mapped[str] = mapped_column(String(128), default="")
    subject: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(String(512), default="")
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: TokenRevocationRow) -> tuple[Revocation, TokenRevocationRow]:
    expires = _utc(row.expires_at)
    return (
        Revocation(row.token_id, row.sandbox_id, expires.timestamp() if expires else None),
        row,
    )


class TokenRevocations:
    """Revoking and listing; plain Python over the registry's database."""

    def __init__(
        self, sessions: sessionmaker[Session], authority: TokenAuthority | None = None
    ) -> None:
        self._sessions = sessions
        self._authority = authority

    async def revoke(
        self,
        caller: Caller,
        *,
        token: str = "",
        token_id: str = "",
        sandbox_id: str = "",
        expires_at: datetime | None = None,
        reason: str = "",
    ) -> TokenRevocationRow:
        subject = ""
        if token:
            if self._authority is None:
                raise FailedPreconditionError(
                    "auth is disabled: revoke by token id instead", reason="AUTH_DISABLED"
                )
            target = self._authority.verify(token)
            # A lab may revoke its own tokens (a leaked one, say); anything else is the
            # service role's to revoke.
            if caller.role is not Role.SERVICE and (
                target.role is not Role.LAB or target.tenant_id != caller.tenant_id
            ):
                raise PermissionDeniedError(
                    "a lab may revoke only its own lab tokens", reason="NOT_YOUR_TOKEN"
                )
            if not target.token_id:
                raise invalid_field("token", "the token has no id (jti) to revoke")
            token_id, subject = target.token_id, target.subject
            expires_at = (
                datetime.fromtimestamp(target.expires_at, UTC) if target.expires_at else None
            )
        elif caller.role is not Role.SERVICE:
            raise PermissionDeniedError(
                "only the service role may revoke by token id or sandbox",
                reason="ROLE_NOT_ALLOWED",
            )
        if bool(token_id) == bool(sandbox_id):
            raise invalid_field("target", "name one of token, token_id or sandbox_id")
        for name, value in (("token_id", token_id), ("sandbox_id", sandbox_id)):
            if len(value) > _MAX_ID:
                raise invalid_field(name, f"at most {_MAX_ID} characters")
        key = f"jti:{token_id}" if token_id else f"sandbox:{sandbox_id}"
        row = TokenRevocationRow(
            key=key,
            token_id=token_id,
            sandbox_id=sandbox_id,
            subject=subject[:256],
            reason=reason[:512],
            revoked_at=datetime.now(UTC),
            expires_at=expires_at,
        )
        return await asyncio.to_thread(self._store, row)

    def _store(self, row: TokenRevocationRow) -> TokenRevocationRow:
        with self._sessions.begin() as session:
            existing = session.get(TokenRevocationRow, row.key)
            if existing is None:
                session.add(row)
                return row
            # Revoking again keeps the longest life (None: until the token expires, never).
            kept, asked = _utc(existing.expires_at), _utc(row.expires_at)
            if kept is not None and (asked is None or asked > kept):
                existing.expires_at = row.expires_at
            return existing

    async def active(self) -> list[tuple[Revocation, TokenRevocationRow]]:
        """Revocations in force; those whose tokens have expired anyway are pruned."""
        return await asyncio.to_thread(self._active)

    def _active(self) -> list[tuple[Revocation, TokenRevocationRow]]:
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            session.execute(delete(TokenRevocationRow).where(TokenRevocationRow.expires_at < now))
            rows = session.scalars(
                select(TokenRevocationRow).where(
                    or_(
                        TokenRevocationRow.expires_at.is_(None),
                        TokenRevocationRow.expires_at >= now,
                    )
                )
            ).all()
            return [_record(row) for row in rows]

    async def fetch(self) -> list[Revocation]:
        """What the registry's own revocation cache reads: its database, no RPC."""
        return [revocation for revocation, _row in await self.active()]
