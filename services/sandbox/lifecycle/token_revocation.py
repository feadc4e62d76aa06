"""A sandbox's tokens die with it: as a sandbox reaches a terminal state, the sandbox
service revokes every token it was given, in the registry's revocation list.

The terminal state is recorded first (it is what the sandbox's record says); the revocation
follows within a second, retried for a few minutes if the registry is unreachable. Until
it lands, the sandbox's own endpoints are already closed, so only a token copied out of
the sandbox could still be used, and never past its expiry (time limit plus margin).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import structlog
from google.protobuf.timestamp_pb2 import Timestamp
from mleb.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

from services.sandbox.config import SandboxSettings
from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow

log = structlog.get_logger("mleb.sandbox.tokens")

_TIMEOUT_S = 10.0
_RETRY_DELAYS_S = (0.5, 1, 2, 5, 10, 20, 30, 60, 60)


def token_deadline(
    row: SandboxRow, settings: SandboxSettings, scheduler_placed: bool
) -> datetime | None:
    """Until when the sandbox's token is minted to work (its expiry less the margin): the
    end of its time limit, and for a scheduler-placed sandbox, whose token is minted at
    submission, the longest its queue may be as well. None while none was minted."""
    launched = store.utc(row.launch_requested_at)
    if scheduler_placed and launched is not None:
        return launched + timedelta(seconds=settings.max_queue_s + row.time_limit_s)
    return store.utc(row.deadline_at)


class SandboxTokenRevoker:
    def __init__(self, channel: grpc.aio.Channel, metadata, token_margin_s: float) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._metadata = tuple(metadata)
        self._margin = timedelta(seconds=token_margin_s)
        self._pending: set[asyncio.Task] = set()

    def sandbox_finished(self, sandbox_id: str, deadline: datetime | None) -> None:
        """Revokes in the background; `deadline` (token_deadline's) None means no token was
        ever minted."""
        if deadline is None:
            return
        task = asyncio.get_running_loop().create_task(
            self.revoke(sandbox_id, deadline + self._margin)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def revoke(self, sandbox_id: str, token_expiry: datetime) -> bool:
        expires = Timestamp()
        expires.FromDatetime(max(token_expiry, datetime.now(UTC)))
        request = registry_service_pb2.RevokeTokenRequest(
            sandbox_id=sandbox_id, expires_at=expires, reason="sandbox ended"
        )
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                await self._stub.RevokeToken(request, metadata=self._metadata, timeout=_TIMEOUT_S)
                log.info("sandbox_token_revoked", sandbox_id=sandbox_id)
                return True
            except grpc.aio.AioRpcError as error:
                log.warning(
                    "sandbox_token_revoke_failed",
                    sandbox_id=sandbox_id,
                    code=error.code().name,
                    retrying=delay is not None,
                )
                if delay is None:
                    return False
                await asyncio.sleep(delay)
        return False

    async def aclose(self) -> None:
        """Gives pending revocations a moment, then stops retrying."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=2.0)
        for task in list(self._pending):
            task.cancel()
