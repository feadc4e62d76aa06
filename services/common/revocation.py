"""Token revocation as every server sees it: a short-lived cache of the registry's list.

The registry holds the revocation list in its database (table registry_token_revocations):
tokens revoked by id (the "jti" claim) through `mleb token revoke`, and every token of a
sandbox, which the sandbox service revokes as the sandbox reaches a terminal state. Each
server (grader, sandbox, and the registry itself) keeps a copy for `ttl_s` seconds and
refreshes it on the first call after that. Refreshing fails closed: once the copy is older
than `max_stale_s` and the registry cannot be reached, lab and sandbox callers are refused
with UNAVAILABLE. Service callers go on with the last copy they had, so that services can
still reach the registry to refresh it.

Graders keep no per-request state: the cache is a copy of shared state, the same on every
replica within `ttl_s`, and a grader that dies loses only its copy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from services.common.auth import Caller, Role
from services.common.errors import UnauthenticatedError, UnavailableError

log = structlog.get_logger("mleb.revocation")

DEFAULT_TTL_S = 5.0
DEFAULT_MAX_STALE_S = 30.0


@dataclass(frozen=True)
class Revocation:
    token_id: str = ""
    sandbox_id: str = ""
    # Unix time after which the revoked token has expired anyway; None: never.
    expires_at: float | None = None


@dataclass(frozen=True)
class RevocationList:
    token_ids: frozenset[str] = field(default_factory=frozenset)
    sandbox_ids: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, revocations: Iterable[Revocation]) -> RevocationList:
        items = list(revocations)
        return cls(
            frozenset(r.token_id for r in items if r.token_id),
            frozenset(r.sandbox_id for r in items if r.sandbox_id),
        )

    def refuse_if_revoked(self, caller: Caller) -> None:
        if caller.token_id and caller.token_id in self.token_ids:
            raise UnauthenticatedError(
                "token has been revoked", reason="TOKEN_REVOKED", metadata={"jti": caller.token_id}
            )
        if caller.role is Role.SANDBOX and caller.sandbox_id in self.sandbox_ids:
            raise UnauthenticatedError(
                "this sandbox has ended; its token no longer works",
                reason="SANDBOX_ENDED",
                metadata={"sandbox_id": caller.sandbox_id},
            )


Fetch = Callable[[], Awaitable[Iterable[Revocation]]]


class CachedRevocations:
    """The revocation list, fetched with `fetch` and trusted for `ttl_s` seconds."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_stale_s: float = DEFAULT_MAX_STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._max_stale_s = max(max_stale_s, ttl_s)
        self._clock = clock
        self._list: RevocationList | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def check(self, caller: Caller) -> None:
        """Raises when the caller's token is revoked, or when it cannot be known that it
        is not (lab and sandbox callers only)."""
        current = await self._current(fail_closed=caller.role is not Role.SERVICE)
        if current is not None:
            current.refuse_if_revoked(caller)

    async def _current(self, *, fail_closed: bool) -> RevocationList | None:
        if self._list is not None and self._clock() - self._fetched_at < self._ttl_s:
            return self._list
        if not fail_closed and self._lock.locked():
            # A service call must not queue behind a refresh that may need that very call.
            return self._list
        async with self._lock:
            if self._list is not None and self._clock() - self._fetched_at < self._ttl_s:
                return self._list
            try:
                self._list = RevocationList.of(await self._fetch())
                self._fetched_at = self._clock()
                return self._list
            except Exception as error:
                fresh_enough = (
                    self._list is not None and self._clock() - self._fetched_at < self._max_stale_s
                )
                log.warning(
                    "revocation_list_unavailable",
                    error=type(error).__name__,
                    using_stale_copy=fresh_enough,
                )
                if fresh_enough or not fail_closed:
                    return self._list
                raise UnavailableError(
                    "cannot check token revocation right now; retry shortly",
                    reason="REVOCATION_LIST_UNAVAILABLE",
                    metadata={"retry_after_s": f"{self._ttl_s:g}"},
                ) from None


_FETCH_TIMEOUT_S = 5.0


def registry_revocations(
    channel, metadata, *, ttl_s: float = DEFAULT_TTL_S, max_stale_s: float = DEFAULT_MAX_STALE_S
) -> CachedRevocations:
    """The cache a grader or sandbox server keeps of the registry's list."""
    from mleb.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

    stub = registry_service_pb2_grpc.RegistryServiceStub(channel)

    async def fetch() -> list[Revocation]:
        reply = await stub.ListRevokedTokens(
            registry_service_pb2.ListRevokedTokensRequest(),
            metadata=tuple(metadata),
            timeout=_FETCH_TIMEOUT_S,
        )
        return [
            Revocation(
                r.token_id,
                r.sandbox_id,
                r.expires_at.ToDatetime().timestamp() if r.HasField("expires_at") else None,
            )
            for r in reply.revoked
        ]

    return CachedRevocations(fetch, ttl_s=ttl_s, max_stale_s=max_stale_s)
