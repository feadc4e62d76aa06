"""Start-up reconcile: compares the rows of active sandboxes with what the engine still runs.

It adopts what still runs, finishes as LOST what vanished, removes containers that are no
longer ours, starts again what never launched, and gives back leases left by a crash.
"""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import select

from services.sandbox.backends.base import BackendError, Handle
from services.sandbox.db import store
from services.sandbox.db.schema import GpuLeaseRow, SandboxRow
from services.sandbox.gpus import leases
from services.sandbox.lifecycle.driving import Driving
from services.sandbox.lifecycle.finishing import Finisher, requested_end
from services.sandbox.lifecycle.gpu_queue import GpuQueue
from services.sandbox.lifecycle.states import ACTIVE, FailureReason, SandboxState
from services.sandbox.lifecycle.supervision import Supervisor

log = structlog.get_logger("mleb.sandbox")

# The longest wait between two tries of an engine (or scheduler) that does not answer.
LIST_RETRY_MAX_S = 30.0


class Reconciler:
    def __init__(
        self, driving: Driving, *, supervisor: Supervisor, finisher: Finisher, queue: GpuQueue
    ) -> None:
        self._sessions = driving.sessions
        self._rows = driving.rows
        self._threads = driving.threads
        self._backend = driving.backend
        self._node = driving.settings.node
        self._instance_labels = driving.instance_labels
        self._live = driving.live
        self._supervisor = supervisor
        self._finisher = finisher
        self._queue = queue

    async def run(self) -> None:
        """Adopts what still runs, finishes what vanished, removes what is not ours anymore."""
        owned = {h.sandbox_id: (h, running) for h, running in await self._list_owned()}

        def active_rows() -> list[SandboxRow]:
            with self._sessions() as session:
                return store.rows_in_states(session, ACTIVE, node=self._node)

        rows = await self._threads.run(active_rows)
        active = {row.id for row in rows}
        # Orphans first: containers without a record, or with a finished one.
        for sandbox_id, (handle, _running) in list(owned.items()):
            if sandbox_id in active:
                continue
            owned.pop(sandbox_id)
            try:
                await self._backend.remove(handle)
                log.info("orphan_removed", sandbox_id=sandbox_id)
            except BackendError as exc:
                log.warning("orphan_remove_failed", sandbox_id=sandbox_id, error=str(exc))
        for row in rows:
            found = owned.pop(row.id, None)
            launched = row.state == SandboxState.RUNNING or row.launch_requested_at is not None
            if launched and found is not None:
                self._adopt(row, found[0])
            elif row.state == SandboxState.RUNNING and row.stop_target:
                # A stop (or the time limit) was under way when the service went away, and
                # what it stopped is gone: a Kubernetes stop deletes the Pod. It ended as asked.
                await self._finisher.finish(
                    row.id, *requested_end(row), handle=Handle(row.id, row.backend_ref)
                )
            elif row.state == SandboxState.RUNNING:
                # With its handle: whatever the backend keeps for it (a job's folder) goes too.
                await self._finisher.finish(
                    row.id,
                    SandboxState.FAILED,
                    FailureReason.LOST,
                    "the sandbox vanished while the service was away",
                    handle=Handle(row.id, row.backend_ref),
                )
            elif row.secret_env_names:
                # PENDING: starting it needs values that died with the old process.
                await self._finisher.fail(
                    row.id,
                    FailureReason.LOST,
                    "the service restarted before the sandbox started, and secret values are "
                    "kept only in memory; create the sandbox again",
                )
            elif (
                not row.gpu_count
                or self._backend.capabilities.scheduler_placed
                or bool(await self._threads.run(self._rows.leased_gpus, row.id))
            ):
                # PENDING, never launched (or its launch left nothing behind): start again.
                self._supervisor.spawn(row.id, self._supervisor.start(row.id, {}, None))
            # Otherwise it is still queued for GPUs, and the queue picks it up.
        await self._threads.run(self._release_finished)
        self._queue.wake()

    async def _list_owned(self) -> list[tuple[Handle, bool]]:
        """What the engine runs for this instance, asked again until it answers: without it
        what still runs would go unsupervised. Only this is retried: the pass over the rows
        adopts and starts sandboxes, which must happen once."""
        delay = 1.0
        while True:
            try:
                return await self._backend.list_owned(self._instance_labels)
            except BackendError as exc:
                log.warning("reconcile_engine_unanswered", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, LIST_RETRY_MAX_S)

    def _release_finished(self) -> None:
        """Leases whose sandbox ended (a crash between the two commits) go back."""
        with self._sessions.begin() as session:
            stale = session.scalars(
                select(GpuLeaseRow.sandbox_id)
                .join(SandboxRow, SandboxRow.id == GpuLeaseRow.sandbox_id)
                .where(
                    GpuLeaseRow.node == self._node,
                    SandboxRow.state.in_([s.value for s in SandboxState if s.terminal]),
                )
            )
            for sandbox_id in set(stale):
                leases.release(session, sandbox_id)

    def _adopt(self, row: SandboxRow, handle: Handle) -> None:
        log.info("sandbox_adopted", sandbox_id=row.id, state=row.state)
        self._live.for_row(row, {})
        self._supervisor.spawn(row.id, self._supervisor.resume(row, handle))
