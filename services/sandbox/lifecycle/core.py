"""SandboxCore: the sandbox service's behaviour in plain Python (no grpc).

Every state change is committed before it is acted on: the row says PENDING before the start
begins, records the launch intent before the backend is asked, says RUNNING (with its
deadline) before the agent is supervised, and holds the terminal state before leases are
released, containers removed and endpoints closed. A restarted service reads these rows and
reconciles them with what the backend still runs (see `reconcile`).

SandboxCore is the entry point; the work is done by its collaborators:
- admission: validation, defaults, idempotent repeats, the PENDING row and its GPU leases;
- supervision: preparing, launching and supervising a sandbox until it ends;
- finishing: recording the end, then releasing what the sandbox held;
- gpu_queue: sandboxes waiting for GPU leases;
- reconcile: the start-up comparison of the rows with what the engine still runs.
They share live (in-memory state of driven sandboxes), rows (their own database calls) and
tasks (background tasks, cancelled on close).
"""

from __future__ import annotations

import asyncio
import builtins
import secrets as secrets_module
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from services.common.auth import TokenAuthority
from services.common.errors import (
    FailedPreconditionError,
    MlebError,
    UnavailableError,
    invalid_field,
)
from services.common.signing import SigningKeys
from services.sandbox.backends.base import Backend
from services.sandbox.config import SandboxSettings
from services.sandbox.db import store
from services.sandbox.db.sandbox_rows import SandboxRows
from services.sandbox.gpus import leases
from services.sandbox.lifecycle import admission
from services.sandbox.lifecycle.driving import Driving
from services.sandbox.lifecycle.evidence import EvidenceSetup, SandboxEvidence
from services.sandbox.lifecycle.finishing import Finisher
from services.sandbox.lifecycle.gpu_queue import GpuQueue
from services.sandbox.lifecycle.interfaces import Endpoints, Inventory
from services.sandbox.lifecycle.live import LiveSandboxes
from services.sandbox.lifecycle.logs import LogReader, LogSignals
from services.sandbox.lifecycle.phases import Phases
from services.sandbox.lifecycle.reconcile import Reconciler
from services.sandbox.lifecycle.states import ACTIVE, FailureReason, SandboxState
from services.sandbox.lifecycle.supervision import OUTPUT_DRAIN_S, Supervisor
from services.sandbox.lifecycle.tasks import BackgroundTasks
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node import artifacts
from services.sandbox.node.artifacts import Archive
from services.sandbox.node.layout import CompetitionSource, LayoutBuilder
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.node.public_store import PublicStore
from services.sandbox.node.stored_artifacts import ArchiveSource, Servable
from services.sandbox.records import (
    GpuListing,
    LogEntry,
    SandboxFilter,
    SandboxPage,
    SandboxRecord,
    SandboxRequest,
)
from services.storage.config import open_store

log = structlog.get_logger("mleb.sandbox")

# How long a state-changing call waits for reconcile before it is UNAVAILABLE.
READY_WAIT_S = 10.0
SERVICE_LABEL = "mleb.service"
NODE_LABEL = "mleb.node"
INSTANCE_LABEL = "mleb.instance"
# What ListGpus shows a lab for a GPU leased to another lab's sandbox.
OTHER_TENANT = "(another tenant)"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class SandboxCore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        backend: Backend,
        competitions: CompetitionSource,
        endpoints: Endpoints,
        inventory: Inventory,
        settings: SandboxSettings,
        tokens: TokenAuthority | None,
        evidence: EvidenceSetup,
        on_sandbox_finished: Callable[[str, datetime | None], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._threads = WorkerThreads()
        store = open_store(settings.object_store) if settings.object_store else None
        self._archives = ArchiveSource(
            store,
            settings.work_dir / "scratch",
            settings.max_artifacts_bytes,
        )
        self._backend = backend
        self._competitions = competitions
        self._inventory = inventory
        self._settings = settings
        self._signals = LogSignals()
        self._reader = LogReader(sessions, self._signals, self._threads)
        self._rows = SandboxRows(sessions)
        self._tasks = BackgroundTasks()
        self._live = LiveSandboxes(sessions, self._signals, self._threads, settings)
        self._queue = GpuQueue(sessions, self._threads, inventory, settings)
        # State-changing calls wait for reconcile, so it never sees a half-made sandbox.
        self._ready = asyncio.Event()
        self.instance_labels = {
            SERVICE_LABEL: "sandbox",
            NODE_LABEL: settings.node,
            INSTANCE_LABEL: settings.instance_id,
        }
        driving = Driving(
            sessions, self._rows, self._threads, self._tasks, backend, self._live, settings,
            self.instance_labels,
        )  # fmt: skip
        self._finisher = Finisher(
            driving,
            endpoints,
            self._signals,
            on_gpus_released=self._queue.wake,
            evidence=SandboxEvidence(
                evidence.chain, evidence.keys, competitions, self._attested_archive
            ),
            on_finished=on_sandbox_finished,
        )
        self._supervisor = Supervisor(
            driving,
            competitions=competitions,
            layouts=LayoutBuilder(
                competitions,
                PublicCache(
                    settings.work_dir / "public-data",
                    settings.cache_max_bytes,
                    self._rows.active_among,
                ),
                self._threads,
                PublicStore(store) if store else None,
            ),
            endpoints=endpoints,
            inventory=inventory,
            # Without auth the grader checks nothing, but the endpoints still read the claims.
            tokens=tokens or TokenAuthority({"ephemeral": secrets_module.token_bytes(32)}),
            finisher=self._finisher,
        )
        self._reconciler = Reconciler(
            driving, supervisor=self._supervisor, finisher=self._finisher, queue=self._queue
        )

    async def _until_ready(self) -> None:
        """State-changing calls wait for reconcile; an engine that does not answer it makes
        them UNAVAILABLE, not hang until the caller's deadline."""
        try:
            await asyncio.wait_for(self._ready.wait(), READY_WAIT_S)
        except TimeoutError as exc:
            raise UnavailableError(
                "the sandbox service is still reconciling with its engine, which does not "
                "answer; try again",
                reason="RECONCILING",
            ) from exc

    @property
    def node(self) -> str:
        return self._settings.node

    @property
    def signing_keys(self) -> SigningKeys:
        return self._finisher.evidence.keys

    # Creating

    async def create(
        self, request: SandboxRequest, caller_subject: str = "", tenant: str = ""
    ) -> tuple[SandboxRecord, bool]:
        """Records the sandbox as PENDING and starts it in the background; returns at once.
        The sandbox belongs to `tenant` (the caller's lab; its subject when empty)."""
        request = admission.normalize(request, caller_subject, self._settings, self._backend.name)
        request = replace(request, tenant=tenant or caller_subject)
        await self._until_ready()
        if request.idempotency_key:
            existing = await self._threads.run(admission.same_as_before, self._sessions, request)
            if existing is not None:
                return existing, False
        await self._backend.admit(request)
        competition = await self._competitions.get(
            request.competition_id, request.description_variant
        )
        if not competition.prepared:
            raise FailedPreconditionError(
                f"competition {request.competition_id!r} has no prepared data: "
                f"{competition.data_status_reason or 'metadata only'}",
                reason="COMPETITION_NOT_PREPARED",
                metadata={"competition_id": request.competition_id},
            )
        leased = request.gpu_count and not self._backend.capabilities.scheduler_placed
        inventory = await self._threads.run(self._inventory.snapshot) if leased else None
        phases = Phases()
        record, created, queued = await self._threads.run(
            admission.insert, self._sessions, request, inventory, self._settings, self._backend.name
        )
        if not created:
            return record, False
        phases.mark("insert")
        try:
            first_seq = await self._finisher.evidence.created(record)
        except MlebError:
            # Nothing may run unrecorded: the sandbox ends before it starts.
            self._supervisor.spawn(
                record.id,
                self._finisher.fail(
                    record.id, FailureReason.REGISTRY_ERROR, "the audit chain did not answer"
                ),
            )
            raise
        phases.mark("audit_created")
        await self._threads.run(self._rows.update, record.id, None, {"audit_first_seq": first_seq})
        phases.mark("audit_seq_recorded")
        log.info(
            "sandbox_created",
            sandbox_id=record.id,
            competition_id=record.competition_id,
            queued=queued,
            secret_env_names=record.secret_env_names,
            **phases.ms,
        )
        if queued:
            self._queue.enqueue(record.id, request.secret_env)
        else:
            self._supervisor.spawn(
                record.id, self._supervisor.start(record.id, dict(request.secret_env), competition)
            )
        return record, True

    # Queries. `tenant` scopes a call to one lab's sandboxes (None: every lab's, for the
    # service role); another lab's sandbox is NOT_FOUND, exactly like a missing one.

    async def get(self, sandbox_id: str, tenant: str | None = None) -> SandboxRecord:
        def read() -> SandboxRecord:
            with self._sessions() as session:
                return store.to_record(session, store.get_row(session, sandbox_id, tenant=tenant))

        return await self._threads.run(read)

    async def list(
        self, where: SandboxFilter, page_size: int = 0, page_token: str = ""
    ) -> SandboxPage:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise invalid_field("page_size", f"between 0 and {MAX_PAGE_SIZE}")
        limit = page_size or DEFAULT_PAGE_SIZE
        after = store.decode_page_token(page_token, where) if page_token else None

        def read() -> SandboxPage:
            with self._sessions() as session:
                rows = store.list_rows(session, where, limit + 1, after)
                token = store.encode_page_token(rows[limit - 1], where) if len(rows) > limit else ""
                return SandboxPage(store.to_records(session, rows[:limit]), token)

        return await self._threads.run(read)

    def stream_logs(
        self, sandbox_id: str, after_seq: int = 0, follow: bool = False, tenant: str | None = None
    ) -> AsyncIterator[builtins.list[LogEntry]]:
        if after_seq < 0:
            raise invalid_field("after_seq", "must not be negative")
        if tenant is None:
            return self._reader.stream(sandbox_id, after_seq, follow)
        return self._stream_visible(sandbox_id, after_seq, follow, tenant)

    async def _stream_visible(
        self, sandbox_id: str, after_seq: int, follow: bool, tenant: str
    ) -> AsyncIterator[builtins.list[LogEntry]]:
        await self.get(sandbox_id, tenant)
        async for entries in self._reader.stream(sandbox_id, after_seq, follow):
            yield entries

    async def list_gpus(self, tenant: str | None = None) -> GpuListing:
        """With a tenant, GPUs leased to another lab show as leased, without its sandbox id."""
        snapshot = await self._threads.run(self._inventory.snapshot)

        def holders() -> dict[str, str]:
            with self._sessions() as session:
                held = leases.holders(session, self.node)
                if tenant is None:
                    return held
                owners = store.tenants_of(session, list(held.values()))
                return {
                    uuid: sandbox_id if owners.get(sandbox_id) == tenant else OTHER_TENANT
                    for uuid, sandbox_id in held.items()
                }

        held = await self._threads.run(holders)
        return GpuListing(
            node=self.node,
            nvml_available=snapshot.nvml_available,
            driver_version=snapshot.driver_version,
            gpus=list(snapshot.gpus),
            leased_by=held,
        )

    # Stopping

    async def stop(
        self, sandbox_id: str, grace_s: float = 0.0, reason: str = "", tenant: str | None = None
    ) -> SandboxRecord:
        """Graceful stop, then kill after the grace period; ends CANCELLED."""
        if grace_s < 0:
            raise invalid_field("grace_period", "must not be negative")
        await self.get(sandbox_id, tenant)
        grace = grace_s or self._settings.stop_grace_s
        why = reason or "stopped on request"
        await self._until_ready()
        row = await self._threads.run(self._rows.get, sandbox_id)
        if SandboxState(row.state).terminal:
            return await self.get(sandbox_id)
        live = self._live.get(sandbox_id)
        if live is not None:
            await live.writer.system(f"stop requested: {why}")
            await live.writer.flush()
        cancelled = await self._threads.run(
            self._rows.update,
            sandbox_id,
            SandboxState.CANCELLED,
            {
                "finished_at": datetime.now(UTC),
                "stop_target": SandboxState.CANCELLED.value,
                "stop_reason": why,
                "failure_message": why,
            },
            launch_requested_at=None,
        )
        if cancelled:  # never launched: nothing runs, so nothing to wait for
            self._queue.forget(sandbox_id)
            self._signals.notify(sandbox_id)
            await self._finisher.release(sandbox_id)
            return await self.get(sandbox_id)
        await self._threads.run(
            self._rows.update,
            sandbox_id,
            None,
            {
                "stop_target": SandboxState.CANCELLED.value,
                "stop_reason": why,
                "stop_grace_s": grace,
            },
            states=ACTIVE,
            stop_target="",
        )
        if live is not None:
            live.stop.set()
        give_up = time.monotonic() + grace + OUTPUT_DRAIN_S
        while time.monotonic() < give_up:
            record = await self.get(sandbox_id)
            # The end is recorded before the leases are released: return once both are done,
            # so a caller can reuse the GPUs at once.
            if record.state.terminal and not record.held_gpu_uuids:
                return record
            await self._signals.wait(sandbox_id, 0.2)
        return await self.get(sandbox_id)

    # Artifacts and retention

    async def artifacts(self, sandbox_id: str, tenant: str | None = None) -> Servable:
        record = await self.get(sandbox_id, tenant)
        if record.artifacts_deleted:
            raise FailedPreconditionError(
                f"the artifacts of sandbox {sandbox_id} were deleted by retention",
                reason="ARTIFACTS_DELETED",
                metadata={"sandbox_id": sandbox_id},
            )
        build = asyncio.ensure_future(self._threads.run(self._archives.serve, record))
        try:
            return await asyncio.shield(build)
        except asyncio.CancelledError:
            # The caller left (deadline, disconnect) while the build ran on: whatever it
            # builds is removed, so its scratch file and its slot are given back.
            build.add_done_callback(_discard_archive)
            raise

    async def _attested_archive(self, record: SandboxRecord) -> Archive:
        return await self._threads.run(self._archives.for_attestation, record)

    async def cleanup(self, older_than_s: float) -> builtins.list[str]:
        """Deletes the host folders (and stored archives) of sandboxes that ended more than
        `older_than_s` ago."""
        removed = await self._threads.run(artifacts.clean_expired, self._sessions, older_than_s)
        await self._threads.run(self._archives.forget, removed)
        return removed

    # Reconciling after a restart

    async def reconcile(self) -> None:
        """Adopts what still runs, finishes what vanished, removes what is not ours anymore."""
        await self._reconciler.run()

    # Lifetime

    async def start(self) -> None:
        """Reconciles, then opens for business and starts the GPU queue and retention."""
        snapshot = await self._threads.run(self._inventory.snapshot)
        self._finisher.evidence.gpu_names = {gpu.uuid: gpu.name for gpu in snapshot.gpus}
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconcile_failed")
        self._ready.set()
        # A scheduler queues its own sandboxes; the service's queue waits for NVML leases.
        if not self._backend.capabilities.scheduler_placed:
            self._tasks.track(self._queue.run(self._supervisor, self._finisher))
        if self._settings.artifacts_retention_s > 0:
            self._tasks.track(self._retention())

    async def _retention(self) -> None:
        period = min(3600.0, max(1.0, self._settings.artifacts_retention_s / 10))
        while True:
            await asyncio.sleep(period)
            try:
                await self.cleanup(self._settings.artifacts_retention_s)
            except Exception:
                log.exception("retention_failed")

    async def close(self) -> None:
        """Stops driving sandboxes without touching them: a restart adopts them."""
        await self._tasks.cancel_all()
        await self._live.close_all()
        self._threads.shutdown()


def _discard_archive(build: asyncio.Future[Servable]) -> None:
    if not build.cancelled() and build.exception() is None:
        build.result().remove()
