"""The GPU wait queue: PENDING sandboxes created with wait_for_gpus, waiting for leases.

A queued sandbox is a PENDING row with a GPU count, no leases and no launch intent; the
database is the queue, so it survives a restart. Only the secret values of queued sandboxes
wait here, in memory only, until they start.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import MlebError
from services.sandbox.config import SandboxSettings
from services.sandbox.db import store
from services.sandbox.gpus import leases
from services.sandbox.lifecycle.finishing import Finisher
from services.sandbox.lifecycle.interfaces import Inventory
from services.sandbox.lifecycle.states import FailureReason, SandboxState
from services.sandbox.lifecycle.supervision import Supervisor
from services.sandbox.lifecycle.threads import WorkerThreads

log = structlog.get_logger("mleb.sandbox")


class GpuQueue:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        threads: WorkerThreads,
        inventory: Inventory,
        settings: SandboxSettings,
    ) -> None:
        self._sessions = sessions
        self._threads = threads
        self._inventory = inventory
        self._settings = settings
        self._secrets: dict[str, dict[str, str]] = {}
        self._wake = asyncio.Event()

    def enqueue(self, sandbox_id: str, secret_values: dict[str, str]) -> None:
        """Takes a sandbox recorded as queued; it starts once its GPUs can be leased."""
        self._secrets[sandbox_id] = dict(secret_values)
        self._wake.set()

    def forget(self, sandbox_id: str) -> None:
        """Drops the secret values of a queued sandbox that was cancelled."""
        self._secrets.pop(sandbox_id, None)

    def wake(self) -> None:
        """Tries the queue now, e.g. because GPUs were released."""
        self._wake.set()

    async def run(self, supervisor: Supervisor, finisher: Finisher) -> None:
        """Starts queued sandboxes as GPUs free up, and at every poll interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.queue_poll_interval_s)
            self._wake.clear()
            try:
                started, failed = await self._threads.run(self._lease_queued)
            except Exception:
                log.exception("gpu_queue_failed")
                continue
            for sandbox_id, message in failed:
                await finisher.fail(sandbox_id, FailureReason.GPU_UNAVAILABLE, message)
            for sandbox_id in started:
                secret_values = self._secrets.pop(sandbox_id, {})
                supervisor.spawn(sandbox_id, supervisor.start(sandbox_id, secret_values, None))

    def _lease_queued(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Leases GPUs to queued sandboxes, oldest first; stops at the first that must wait."""
        with self._sessions() as session:
            queued = [
                row
                for row in store.rows_in_states(
                    session, [SandboxState.PENDING], node=self._settings.node
                )
                if row.gpu_count and row.launch_requested_at is None
            ]
            held = store.leases_of(session, [r.id for r in queued])
            queued = [r for r in queued if not held[r.id]]
        if not queued:
            return [], []
        leasable, unhealthy = leases.gpu_sets(self._inventory.snapshot())
        started: list[str] = []
        failed: list[tuple[str, str]] = []
        for row in queued:
            try:
                with self._sessions.begin() as session:
                    chosen = leases.choose(
                        self._settings.node,
                        leasable,
                        unhealthy,
                        set(leases.holders(session, self._settings.node)),
                        count=row.gpu_count,
                        wanted=row.requested_gpu_uuids,
                    )
                    if chosen is None:
                        break
                    leases.lease(session, self._settings.node, row.id, chosen)
                    # Cancelled meanwhile: the rollback drops the leases again.
                    still_pending = {"state": SandboxState.PENDING.value}
                    if not store.transition(
                        session, row.id, None, still_pending, states=[SandboxState.PENDING]
                    ):
                        raise leases.LeaseConflict(row.id)
                started.append(row.id)
            except leases.LeaseConflict:
                break
            except MlebError as exc:
                failed.append((row.id, exc.message))
        return started, failed
