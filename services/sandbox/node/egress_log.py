"""The sandbox record's egress log: the proxy's events, summed per destination and verdict,
written to the database in short batches.

A batch goes out at most `flush_interval_s` after its first event, and closing a sandbox's
endpoints writes what is left before returning, so a finished sandbox's record is complete
once its endpoints are closed. The number of destinations per sandbox is capped; connections
beyond the cap are only counted (egress_omitted_connections), so an agent cannot grow the
database without bound by inventing host names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Protocol

import structlog
from sqlalchemy.orm import Session, sessionmaker

from services.sandbox.db import store
from services.sandbox.node.egress_proxy import EgressEvent, EgressSums

log = structlog.get_logger("mleb.sandbox.egress")

DEFAULT_MAX_DESTINATIONS = 256


class EgressRecorder(Protocol):
    """Where the allowlist proxy's events go: this database log, or a node runner's file
    (services.sandbox.node.runner_endpoints)."""

    def record(self, sandbox_id: str, event: EgressEvent) -> None: ...

    async def flush(self, sandbox_id: str) -> None: ...

    async def aclose(self) -> None: ...


class EgressLog:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        max_destinations: int = DEFAULT_MAX_DESTINATIONS,
        flush_interval_s: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._max_destinations = max_destinations
        self._interval = flush_interval_s
        self._pending: dict[str, list[EgressEvent]] = defaultdict(list)
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def record(self, sandbox_id: str, event: EgressEvent) -> None:
        """Takes one event (from the event loop); it is written within flush_interval_s."""
        self._pending[sandbox_id].append(event)
        if sandbox_id not in self._timers:
            self._timers[sandbox_id] = asyncio.get_running_loop().create_task(
                self._flush_later(sandbox_id)
            )

    async def _flush_later(self, sandbox_id: str) -> None:
        await asyncio.sleep(self._interval)
        self._timers.pop(sandbox_id, None)
        await self.flush(sandbox_id)

    async def flush(self, sandbox_id: str) -> None:
        """Writes the sandbox's pending events now."""
        timer = self._timers.pop(sandbox_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        async with self._locks[sandbox_id]:
            events = self._pending.pop(sandbox_id, [])
            if not events:
                return
            try:
                await asyncio.to_thread(self._write, sandbox_id, events)
            except Exception:
                # The sandbox row may be gone (deleted); egress must never break the proxy.
                log.exception("egress_log_write_failed", sandbox_id=sandbox_id)

    def _write(self, sandbox_id: str, events: list[EgressEvent]) -> None:
        # Summed without a cap here: the database's rows hold the cap across batches.
        sums = EgressSums(max_destinations=len(events))
        for event in events:
            sums.add(event)
        with self._sessions.begin() as session:
            store.add_egress(session, sandbox_id, sums, self._max_destinations)

    async def aclose(self) -> None:
        for sandbox_id in list(self._pending):
            with contextlib.suppress(Exception):
                await self.flush(sandbox_id)
