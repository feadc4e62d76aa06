"""Bearer tokens: HMAC-signed JWTs with a key id, verifiable by any replica without a database.

MLEB_AUTH_SECRET holds "kid:secret" pairs separated by commas. The first pair signs new
tokens; every pair verifies, so keys rotate by prepending a new pair and later dropping
the old one.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import time
import uuid
from dataclasses import dataclass

import jwt

from services.common.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)

_ALGORITHM = "HS256"
_ISSUER = "mleb"
# Secrets shorter than this are refused: HS256 with a short key is guessable offline.
MIN_SECRET_BYTES = 32


class Role(enum.StrEnum):
    SERVICE = "service"
    LAB = "lab"
    SANDBOX = "sandbox"


@dataclass(frozen=True)
class Caller:
    """Who is calling, as proven by their token."""

    role: Role
    subject: str
    sandbox_id: str = ""
    competition_id: str = ""
    expires_at: float | None = None
    # The lab a token acts for (claim "tnt"); tokens without the claim act for their subject.
    tenant: str = ""
    # The token's id (claim "jti"), which revocation names.
    token_id: str = ""

    @property
    def tenant_id(self) -> str:
        """Whose sandboxes this caller may see (the service role sees every tenant's)."""
        return self.tenant or self.subject


# A caller for servers running with auth explicitly disabled.
DEV_CALLER = Caller(role=Role.SERVICE, subject="auth-disabled")

_current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "mleb_caller", default=None
)


def current_caller() -> Caller:
    caller = _current_caller.get()
    if caller is None:
        raise UnauthenticatedError("no authenticated caller for this request")
    return caller


def set_current_caller(caller: Caller) -> contextvars.Token:
    return _current_caller.set(caller)


def reset_current_caller(token: contextvars.Token) -> None:
    # A streaming handler may be finalised from another context; the value dies with it.
    with contextlib.suppress(ValueError):
        _current_caller.reset(token)


def require_competition_access(caller: Caller, competition_id: str) -> None:
    """A sandbox token reaches only its own competition."""
    if caller.role is Role.SANDBOX and caller.competition_id != competition_id:
        raise PermissionDeniedError(
            "this sandbox token is for another competition",
            reason="WRONG_COMPETITION",
            metadata={"requested_competition": competition_id},
        )


def parse_keys(spec: str) -> dict[str, bytes]:
    """Parses "kid:secret,kid2:secret2" into an ordered mapping."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kid, sep, secret = item.partition(":")
        if not sep or not kid or not secret:
            raise InvalidArgumentError("MLEB_AUTH_SECRET entries must look like kid:secret")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise InvalidArgumentError(
                f"MLEB_AUTH_SECRET key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes"
            )
        keys[kid] = secret.encode()
    return keys


class TokenAuthority:
    """Issues and verifies tokens with a set of named keys."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise InvalidArgumentError("at least one auth key is needed (MLEB_AUTH_SECRET)")
        self._keys = dict(keys)
        self._signing_kid = next(iter(keys))

    @classmethod
    def from_spec(cls, spec: str) -> TokenAuthority:
        return cls(parse_keys(spec))

    def issue(
        self,
        role: Role,
        subject: str,
        *,
        ttl_s: float | None = None,
        sandbox_id: str = "",
        competition_id: str = "",
        tenant: str = "",
    ) -> str:
        if role is Role.SANDBOX and not (sandbox_id and competition_id):
            raise InvalidArgumentError("a sandbox token needs a sandbox id and a competition id")
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": _ISSUER,
            "sub": subject,
            "role": role.value,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        if ttl_s is not None:
            claims["exp"] = now + int(ttl_s)
        if tenant:
            claims["tnt"] = tenant
        if sandbox_id:
            claims["sbx"] = sandbox_id
            claims["comp"] = competition_id
        return jwt.encode(
            claims,
            self._keys[self._signing_kid],
            algorithm=_ALGORITHM,
            headers={"kid": self._signing_kid},
        )

    def verify(self, token: str) -> Caller:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError("malformed token", reason="BAD_TOKEN") from exc
        key = self._keys.get(kid)
        if key is None:
            raise UnauthenticatedError("token signed with an unknown key", reason="UNKNOWN_KEY")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["sub", "role", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise UnauthenticatedError("invalid token", reason="BAD_TOKEN") from exc
        try:
            role = Role(claims["role"])
        except ValueError as exc:
            raise UnauthenticatedError("token has an unknown role", reason="BAD_TOKEN") from exc
        caller = Caller(
            role=role,
            subject=str(claims["sub"]),
            sandbox_id=str(claims.get("sbx", "")),
            competition_id=str(claims.get("comp", "")),
            expires_at=claims.get("exp"),
            tenant=str(claims.get("tnt", "")),
            token_id=str(claims.get("jti", "")),
        )
        if role is Role.SANDBOX and not (caller.sandbox_id and caller.competition_id):
            raise UnauthenticatedError("sandbox token lacks its sandbox", reason="BAD_TOKEN")
        if role is not Role.SERVICE and not caller.token_id:
            # A token without an id could never be revoked.
            raise UnauthenticatedError("token has no id (jti)", reason="BAD_TOKEN")
        return caller
