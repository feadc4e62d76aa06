"""SandboxCore: the sandbox service's behaviour in plain Python (no grpc).

Every state change is committed before it is acted on: the row says PENDING before the start
begins, records the launch intent before the backend is asked, says RUNNING (with its
deadline) before the agent is supervised, and holds the terminal state before leases are
released, containers removed and endpoints closed. A restarted service reads these rows and
reconciles them with what the backend still runs (see `reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets as secrets_module
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common.auth import Role, TokenAuthority
from services.common.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    MlebError,
    invalid_field,
)
from services.sandbox import artifacts, leases, store
from services.sandbox.backends.base import (
    GRPC_GRADER_PORT,
    Backend,
    BackendError,
    Handle,
    HostLayout,
    LaunchSpec,
    NetworkMode,
)
from services.sandbox.config import SandboxSettings
from services.sandbox.layout import (
    CompetitionSource,
    LayoutBuilder,
    RegistryFetchError,
    host_layout,
)
from services.sandbox.logs import LogReader, LogSignals, LogWriter, Redactor
from services.sandbox.models import GpuLeaseRow, SandboxRow
from services.sandbox.records import (
    Competition,
    DescriptionVariant,
    GpuListing,
    GpuView,
    LogEntry,
    LogStream,
    SandboxFilter,
    SandboxPage,
    SandboxRecord,
    SandboxRequest,
)
from services.sandbox.states import (
    FailureReason,
    SandboxState,
    backend_failure_reason,
)
from services.sandbox.threads import WorkerThreads

log = structlog.get_logger("mleb.sandbox")

SERVICE_LABEL = "mleb.service"
NODE_LABEL = "mleb.node"
INSTANCE_LABEL = "mleb.instance"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Racing creates retry this often when another transaction takes the GPUs they chose.
_LEASE_ATTEMPTS = 20
# After the agent exits, how long its remaining output may take to arrive.
_OUTPUT_DRAIN_S = 30.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
# Set by the service for the agent; a request may not override them.
RESERVED_ENV = frozenset(
    {"MLEB_SANDBOX_TOKEN", "MLEB_GRADER_ADDR", "MLEB_SANDBOX_ID", "MLEB_COMPETITION_ID"}
)
_ACTIVE = (SandboxState.PENDING, SandboxState.RUNNING)


class Endpoints(Protocol):
    async def open(
        self,
        sandbox_id: str,
        sockets_dir: Path,
        sandbox_token: str,
        network: NetworkMode,
        allowed_hosts: list[str],
    ) -> None: ...

    async def close(self, sandbox_id: str) -> None: ...


class Inventory(Protocol):
    def snapshot(self) -> Any: ...

    def sample(self, uuids: list[str]) -> dict[str, tuple[float, int]]: ...


@dataclass
class _Stats:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    gpu_utilization_sum: float = 0.0
    gpu_samples: int = 0
    peak_gpu_memory_bytes: int = 0


@dataclass
class _Live:
    """What this process holds in memory for a sandbox it drives."""

    writer: LogWriter
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stats: _Stats = field(default_factory=_Stats)


def _now() -> datetime:
    return datetime.now(UTC)


def new_sandbox_id() -> str:
    return f"sbx-{uuid.uuid4().hex[:20]}"


def _comparable(request: SandboxRequest) -> dict[str, object]:
    """The fields an idempotent repeat must match, by their request field names."""
    return {
        "competition_id": request.competition_id,
        "image": request.image,
        "command": list(request.command),
        "env": dict(request.env),
        "secret_env": sorted(request.secret_env),
        "resources.cpus": request.cpus,
        "resources.memory_bytes": request.memory_bytes,
        "resources.shm_bytes": request.shm_bytes,
        "resources.pids_limit": request.pids_limit,
        "resources.gpu_count": request.gpu_count,
        "resources.gpu_uuids": list(request.gpu_uuids),
        "time_limit": request.time_limit_s,
        "network.mode": request.network.value,
        "network.allowed_hosts": list(request.allowed_hosts),
        "description_variant": request.description_variant.value,
        "labels": dict(request.labels),
        "owner": request.owner,
        "wait_for_gpus": request.wait_for_gpus,
        "mlebench_compat": request.mlebench_compat,
    }


def _stored_comparable(row: SandboxRow, labels: dict[str, str]) -> dict[str, object]:
    return {
        "competition_id": row.competition_id,
        "image": row.image,
        "command": list(row.command),
        "env": dict(row.env),
        "secret_env": sorted(row.secret_env_names),
        "resources.cpus": row.cpus,
        "resources.memory_bytes": row.memory_bytes,
        "resources.shm_bytes": row.shm_bytes,
        "resources.pids_limit": row.pids_limit,
        "resources.gpu_count": row.gpu_count,
        "resources.gpu_uuids": list(row.requested_gpu_uuids),
        "time_limit": row.time_limit_s,
        "network.mode": row.network_mode,
        "network.allowed_hosts": list(row.allowed_hosts),
        "description_variant": row.description_variant,
        "labels": labels,
        "owner": row.owner,
        "wait_for_gpus": row.wait_for_gpus,
        "mlebench_compat": row.mlebench_compat,
    }


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
    ) -> None:
        self._sessions = sessions
        self._threads = WorkerThreads()
        self._backend = backend
        self._competitions = competitions
        self._layouts = LayoutBuilder(
            competitions, settings.work_dir / "public-data", self._threads
        )
        self._endpoints = endpoints
        self._inventory = inventory
        self._settings = settings
        # Without auth the grader checks nothing, but the endpoints still read the claims.
        self._tokens = tokens or TokenAuthority({"ephemeral": secrets_module.token_bytes(32)})
        self._signals = LogSignals()
        self._reader = LogReader(sessions, self._signals, self._threads)
        self._live: dict[str, _Live] = {}
        # Secret values of queued sandboxes wait here, in memory only, until they start.
        self._queued_secrets: dict[str, dict[str, str]] = {}
        self._queue_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        # State-changing calls wait for reconcile, so it never sees a half-made sandbox.
        self._ready = asyncio.Event()
        self.instance_labels = {
            SERVICE_LABEL: "sandbox",
            NODE_LABEL: settings.node,
            INSTANCE_LABEL: settings.instance_id,
        }

    @property
    def node(self) -> str:
        return self._settings.node

    def _root(self, sandbox_id: str) -> Path:
        return self._settings.work_dir / "sandboxes" / sandbox_id

    # Creating

    def _normalize(self, request: SandboxRequest, caller_subject: str) -> SandboxRequest:
        s = self._settings
        if not request.competition_id:
            raise invalid_field("competition_id", "required")
        if not request.image and self._backend.name != "local":
            raise invalid_field("image", "required")
        if self._backend.name == "local" and not request.command:
            raise invalid_field("command", "the local backend runs no image, so it needs a command")
        for name, number in (
            ("resources.cpus", request.cpus),
            ("resources.memory_bytes", request.memory_bytes),
            ("resources.shm_bytes", request.shm_bytes),
            ("resources.pids_limit", request.pids_limit),
            ("resources.gpu_count", request.gpu_count),
            ("time_limit", request.time_limit_s),
        ):
            if number < 0:
                raise invalid_field(name, "must not be negative")
        time_limit = request.time_limit_s or s.default_time_limit_s
        if time_limit > s.max_time_limit_s:
            raise invalid_field("time_limit", f"at most {s.max_time_limit_s:g} seconds")
        gpu_uuids = list(dict.fromkeys(request.gpu_uuids))
        gpu_count = request.gpu_count
        if gpu_uuids:
            if gpu_count and gpu_count != len(gpu_uuids):
                raise invalid_field("resources.gpu_count", "does not match resources.gpu_uuids")
            gpu_count = len(gpu_uuids)
        network = request.network
        if network is NetworkMode.ALLOWLIST and not request.allowed_hosts:
            raise invalid_field("network.allowed_hosts", "allowlist mode needs at least one host")
        if network is not NetworkMode.ALLOWLIST and request.allowed_hosts:
            raise invalid_field("network.allowed_hosts", "only used in allowlist mode")
        for source, names in (("env", request.env), ("secret_env", request.secret_env)):
            for name in names:
                if not _ENV_NAME.match(name):
                    raise invalid_field(f"{source}", f"{name!r} is not a variable name")
                if name in RESERVED_ENV:
                    raise invalid_field(f"{source}.{name}", "set by the service")
        if overlap := sorted(set(request.env) & set(request.secret_env)):
            raise invalid_field("secret_env", f"also in env: {', '.join(overlap)}")
        for key, value in request.labels.items():
            if not _LABEL_KEY.match(key):
                raise invalid_field("labels", f"{key!r} is not a label key")
            if len(value) > 256:
                raise invalid_field(f"labels.{key}", "longer than 256 characters")
        if len(request.idempotency_key) > 256:
            raise invalid_field("idempotency_key", "longer than 256 characters")
        return replace(
            request,
            cpus=request.cpus or s.default_cpus,
            memory_bytes=request.memory_bytes or s.default_memory_bytes,
            shm_bytes=request.shm_bytes or s.default_shm_bytes,
            pids_limit=request.pids_limit or s.default_pids_limit,
            gpu_count=gpu_count,
            gpu_uuids=gpu_uuids,
            time_limit_s=time_limit,
            owner=request.owner or caller_subject,
        )

    async def create(
        self, request: SandboxRequest, caller_subject: str = ""
    ) -> tuple[SandboxRecord, bool]:
        """Records the sandbox as PENDING and starts it in the background; returns at once."""
        request = self._normalize(request, caller_subject)
        await self._ready.wait()
        if request.idempotency_key:
            existing = await self._threads.run(self._same_as_before, request)
            if existing is not None:
                return existing, False
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
        inventory = await self._threads.run(self._inventory.snapshot) if request.gpu_count else None
        record, created, queued = await self._threads.run(self._insert, request, inventory)
        if not created:
            return record, False
        log.info(
            "sandbox_created",
            sandbox_id=record.id,
            competition_id=record.competition_id,
            queued=queued,
            secret_env_names=record.secret_env_names,
        )
        if queued:
            self._queued_secrets[record.id] = dict(request.secret_env)
            self._queue_wake.set()
        else:
            self._spawn(record.id, self._start(record.id, dict(request.secret_env), competition))
        return record, True

    def _same_as_before(self, request: SandboxRequest) -> SandboxRecord | None:
        with self._sessions() as session:
            row = store.find_by_idempotency_key(session, request.idempotency_key)
            if row is None:
                return None
            labels = store.labels_of(session, [row.id])[row.id]
            stored = _stored_comparable(row, labels)
            asked = _comparable(request)
            differing = [name for name, value in asked.items() if stored[name] != value]
            if differing:
                raise AlreadyExistsError(
                    f"idempotency key {request.idempotency_key!r} was used for sandbox {row.id} "
                    f"with different {', '.join(differing)}",
                    reason="IDEMPOTENCY_KEY_REUSED",
                    metadata={"sandbox_id": row.id, "differing_fields": ",".join(differing)},
                    violations=[
                        FieldViolation(name, "differs from the first request with this key")
                        for name in differing
                    ],
                )
            return store.to_record(session, row)

    def _new_row(self, sandbox_id: str, request: SandboxRequest) -> SandboxRow:
        return SandboxRow(
            id=sandbox_id,
            competition_id=request.competition_id,
            image=request.image,
            image_digest="",
            command=list(request.command),
            env=dict(request.env),
            secret_env_names=sorted(request.secret_env),
            cpus=request.cpus,
            memory_bytes=request.memory_bytes,
            shm_bytes=request.shm_bytes,
            pids_limit=request.pids_limit,
            gpu_count=request.gpu_count,
            requested_gpu_uuids=list(request.gpu_uuids),
            time_limit_s=request.time_limit_s,
            network_mode=request.network.value,
            allowed_hosts=list(request.allowed_hosts),
            description_variant=request.description_variant.value,
            owner=request.owner,
            idempotency_key=request.idempotency_key or None,
            wait_for_gpus=request.wait_for_gpus,
            mlebench_compat=request.mlebench_compat,
            backend=self._backend.name,
            state=SandboxState.PENDING.value,
            failure_class="",
            failure_reason="",
            failure_message="",
            exit_code=None,
            created_at=_now(),
            stop_target="",
            stop_reason="",
            stop_grace_s=0.0,
            node=self.node,
            instance_id=self._settings.instance_id,
            backend_ref="",
            cpu_seconds=0.0,
            peak_memory_bytes=0,
            gpu_utilization_percent=0.0,
            peak_gpu_memory_bytes=0,
            artifacts_size_bytes=0,
            submission_collected=False,
            last_log_seq=0,
            last_output_time=0.0,
            layout_root=str(self._root(sandbox_id)),
        )

    def _insert(self, request: SandboxRequest, inventory: Any) -> tuple[SandboxRecord, bool, bool]:
        """Inserts the row and, in the same transaction, its GPU leases. Returns
        (record, created, queued)."""
        sandbox_id = new_sandbox_id()
        leasable, unhealthy = _gpu_sets(inventory)
        if inventory is not None and not inventory.nvml_available:
            raise FailedPreconditionError(
                f"node {self.node} has no usable GPUs (NVML is not available)",
                reason="NO_GPUS",
                metadata={"node": self.node},
            )
        for _attempt in range(_LEASE_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    row = self._new_row(sandbox_id, request)
                    store.insert_sandbox(session, row, request.labels)
                    queued = False
                    if request.gpu_count:
                        chosen = leases.choose(
                            self.node,
                            leasable,
                            unhealthy,
                            set(leases.holders(session, self.node)),
                            count=request.gpu_count,
                            wanted=request.gpu_uuids,
                        )
                        if chosen is None:
                            if not request.wait_for_gpus:
                                free = len(set(leasable) - set(leases.holders(session, self.node)))
                                raise leases.gpus_busy(self.node, request.gpu_count, free)
                            queued = True
                        else:
                            leases.lease(session, self.node, sandbox_id, chosen)
                    record = store.to_record(session, row)
                return record, True, queued
            except leases.LeaseConflict:
                continue
            except IntegrityError:
                # Another create with the same idempotency key won the race.
                existing = self._same_as_before(request)
                if existing is None:
                    raise
                return existing, False, False
        raise leases.gpus_busy(self.node, request.gpu_count, 0)

    # Driving a sandbox

    def _spawn(self, sandbox_id: str, work: Any) -> None:
        self._track(self._guarded(sandbox_id, work))

    def _track(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, sandbox_id: str, work: Any) -> None:
        try:
            await work
        except Exception as exc:
            log.exception("sandbox_task_failed", sandbox_id=sandbox_id)
            with contextlib.suppress(Exception):
                await self._finish(
                    sandbox_id,
                    SandboxState.FAILED,
                    FailureReason.ENGINE_ERROR,
                    f"the service failed while driving the sandbox: {type(exc).__name__}",
                    handle=None,
                )

    def _live_for(self, row: SandboxRow, secret_values: dict[str, str]) -> _Live:
        live = self._live.get(row.id)
        if live is None:
            writer = LogWriter(
                self._sessions,
                self._signals,
                self._threads,
                row.id,
                last_seq=row.last_log_seq,
                redact=Redactor(secret_values.values()),
                batch_lines=self._settings.log_batch_lines,
                flush_interval_s=self._settings.log_flush_interval_s,
            )
            live = self._live[row.id] = _Live(writer)
        return live

    def _row(self, sandbox_id: str) -> SandboxRow:
        with self._sessions() as session:
            return store.get_row(session, sandbox_id)

    def _update(
        self,
        sandbox_id: str,
        target: SandboxState | None,
        values: dict[str, object],
        **conditions: object,
    ) -> bool:
        with self._sessions.begin() as session:
            return store.transition(session, sandbox_id, target, values, **conditions)

    async def _start(
        self, sandbox_id: str, secret_values: dict[str, str], competition: Competition | None
    ) -> None:
        row = await self._threads.run(self._row, sandbox_id)
        if row.state != SandboxState.PENDING:
            return
        live = self._live_for(row, secret_values)
        writer = live.writer
        writer.system(
            f"sandbox {sandbox_id} for competition {row.competition_id}: preparing "
            f"(backend {row.backend}, node {row.node})"
        )
        root = Path(row.layout_root)
        try:
            if competition is None:
                competition = await self._competitions.get(
                    row.competition_id, DescriptionVariant(row.description_variant)
                )
            layout = await self._layouts.prepare(root, competition)
        except (MlebError, RegistryFetchError) as exc:
            message = exc.message if isinstance(exc, MlebError) else str(exc)
            await self._finish(
                sandbox_id,
                SandboxState.FAILED,
                FailureReason.REGISTRY_ERROR,
                f"public data could not be fetched: {message}",
                handle=None,
            )
            return
        except OSError as exc:
            await self._finish(
                sandbox_id,
                SandboxState.FAILED,
                FailureReason.RUNTIME_ERROR,
                f"the sandbox folder could not be prepared: {exc}",
                handle=None,
            )
            return
        launching = await self._threads.run(
            self._update,
            sandbox_id,
            None,
            {"launch_requested_at": _now()},
            states=[SandboxState.PENDING],
        )
        if not launching:  # cancelled while the data was prepared
            await self._drop_live(sandbox_id)
            return
        await self._launch(row, layout, secret_values)

    async def _launch(
        self, row: SandboxRow, layout: HostLayout, secret_values: dict[str, str]
    ) -> None:
        sandbox_id = row.id
        writer = self._live[sandbox_id].writer
        token = self._mint_token(row, row.time_limit_s)
        writer.redact.add(token)
        try:
            await self._endpoints.open(
                sandbox_id,
                layout.sockets_dir,
                token,
                NetworkMode(row.network_mode),
                list(row.allowed_hosts),
            )
        except Exception as exc:
            log.exception("endpoints_open_failed", sandbox_id=sandbox_id)
            await self._finish(
                sandbox_id,
                SandboxState.FAILED,
                FailureReason.ENGINE_ERROR,
                f"the sandbox's endpoints could not be opened: {exc}",
                handle=None,
            )
            return
        with self._sessions() as session:
            gpu_uuids = store.leases_of(session, [sandbox_id])[sandbox_id]
        spec = LaunchSpec(
            sandbox_id=sandbox_id,
            competition_id=row.competition_id,
            image=row.image,
            command=list(row.command),
            env=self._agent_env(row, secret_values, token),
            cpus=row.cpus,
            memory_bytes=row.memory_bytes,
            shm_bytes=row.shm_bytes,
            pids_limit=row.pids_limit,
            gpu_uuids=gpu_uuids,
            network=NetworkMode(row.network_mode),
            allowed_hosts=list(row.allowed_hosts),
            layout=layout,
            mlebench_compat=row.mlebench_compat,
            labels=dict(self.instance_labels),
            time_limit_s=row.time_limit_s,
        )
        gpus = f", GPUs {', '.join(gpu_uuids)}" if gpu_uuids else ""
        writer.system(f"launching image {row.image or '(none)'}{gpus}; network {row.network_mode}")
        try:
            handle = await self._backend.launch(spec)
        except BackendError as exc:
            reason = backend_failure_reason(exc.reason)
            await self._finish(sandbox_id, SandboxState.FAILED, reason, str(exc), handle=None)
            return
        started = _now()
        await self._threads.run(
            self._update,
            sandbox_id,
            SandboxState.RUNNING,
            {
                "backend_ref": handle.ref,
                "image_digest": handle.image_digest,
                "started_at": started,
                "deadline_at": started + timedelta(seconds=row.time_limit_s),
            },
        )
        writer.system(f"running (time limit {row.time_limit_s:g}s)")
        await self._supervise(sandbox_id, handle, layout, since=0.0)

    def _mint_token(self, row: SandboxRow, valid_for_s: float) -> str:
        return self._tokens.issue(
            Role.SANDBOX,
            f"sandbox:{row.id}",
            ttl_s=valid_for_s + self._settings.token_margin_s,
            sandbox_id=row.id,
            competition_id=row.competition_id,
        )

    def _agent_env(
        self, row: SandboxRow, secret_values: dict[str, str], token: str
    ) -> dict[str, str]:
        return {
            **row.env,
            **secret_values,
            "MLEB_SANDBOX_ID": row.id,
            "MLEB_COMPETITION_ID": row.competition_id,
            "COMPETITION_ID": row.competition_id,
            "MLEB_SANDBOX_TOKEN": token,
            # The sidecar's loopback port; the local backend swaps in a unix: address.
            "MLEB_GRADER_ADDR": f"127.0.0.1:{GRPC_GRADER_PORT}",
        }

    async def _supervise(
        self, sandbox_id: str, handle: Handle, layout: HostLayout, since: float
    ) -> None:
        """Waits for the agent to end, enforcing the time limit and stop requests."""
        live = self._live[sandbox_id]
        row = await self._threads.run(self._row, sandbox_id)
        capture = asyncio.create_task(self._capture(handle, live.writer, since))
        sampler = asyncio.create_task(self._sample(handle, live.stats, sandbox_id))
        waiter = asyncio.create_task(self._backend.wait(handle))
        stopper = asyncio.create_task(live.stop.wait())
        deadline = store.utc(row.deadline_at)
        stop_target = row.stop_target
        try:
            while not waiter.done() and not stop_target:
                remaining = (deadline - _now()).total_seconds() if deadline else 0.0
                if remaining <= 0:
                    await self._threads.run(
                        self._update,
                        sandbox_id,
                        None,
                        {
                            "stop_target": SandboxState.TIMED_OUT.value,
                            "stop_reason": f"time limit of {row.time_limit_s:g}s reached",
                            "stop_grace_s": self._settings.stop_grace_s,
                        },
                        stop_target="",
                    )
                else:
                    await asyncio.wait(
                        {waiter, stopper},
                        timeout=min(remaining, self._settings.queue_poll_interval_s),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                # Stop intents may come from another process sharing the database.
                row = await self._threads.run(self._row, sandbox_id)
                stop_target = row.stop_target
            if stop_target and not waiter.done():
                grace = row.stop_grace_s or self._settings.stop_grace_s
                live.writer.system(f"stopping: {row.stop_reason}; killing after {grace:g}s")
                await self._backend.stop(handle, grace)
            try:
                exit_info = await waiter
            except BackendError as exc:
                await self._end_capture(capture)
                sampler.cancel()
                await self._finish(
                    sandbox_id,
                    SandboxState.FAILED,
                    backend_failure_reason(exc.reason),
                    str(exc),
                    handle=handle,
                )
                return
            await self._end_capture(capture)
        finally:
            for task in (stopper, sampler, capture, waiter):
                task.cancel()
        with contextlib.suppress(BackendError):
            _merge_usage(live.stats, await self._backend.usage(handle))
        state, reason, message = SandboxState.SUCCEEDED, None, ""
        if stop_target:
            state = SandboxState(stop_target)
            message = row.stop_reason
        elif exit_info.oom_killed:
            state, reason = SandboxState.FAILED, FailureReason.OUT_OF_MEMORY
            message = f"killed for exceeding its memory limit of {row.memory_bytes} bytes"
        elif exit_info.exit_code != 0:
            state, reason = SandboxState.FAILED, FailureReason.NONZERO_EXIT
            message = f"the agent exited with code {exit_info.exit_code}"
        await self._finish(
            sandbox_id, state, reason, message, handle=handle, exit_code=exit_info.exit_code
        )

    async def _capture(self, handle: Handle, writer: LogWriter, since: float) -> None:
        try:
            async for line in self._backend.output(handle, since):
                if since and line.time <= since:  # already stored before a restart
                    continue
                writer.add(LogStream(line.stream.value), line.text, line.time)
                if writer.full:
                    await writer.flush()
        except BackendError as exc:
            writer.system(f"log capture stopped: {exc}")

    async def _end_capture(self, capture: asyncio.Task[None]) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(capture, _OUTPUT_DRAIN_S)

    async def _sample(self, handle: Handle, stats: _Stats, sandbox_id: str) -> None:
        interval = self._settings.sample_interval_s
        with self._sessions() as session:
            gpu_uuids = store.leases_of(session, [sandbox_id])[sandbox_id]
        while True:
            with contextlib.suppress(BackendError):
                _merge_usage(stats, await self._backend.usage(handle))
            if gpu_uuids:
                try:
                    samples = await self._threads.run(self._inventory.sample, gpu_uuids)
                except Exception:  # NVML hiccups must not end the sandbox
                    log.warning("gpu_sample_failed", sandbox_id=sandbox_id)
                    samples = {}
                if samples:
                    stats.gpu_utilization_sum += sum(u for u, _m in samples.values()) / len(samples)
                    stats.gpu_samples += 1
                    stats.peak_gpu_memory_bytes = max(
                        stats.peak_gpu_memory_bytes, sum(m for _u, m in samples.values())
                    )
            await asyncio.sleep(interval)

    async def _finish(
        self,
        sandbox_id: str,
        state: SandboxState,
        reason: FailureReason | None,
        message: str,
        *,
        handle: Handle | None,
        exit_code: int | None = None,
    ) -> None:
        """Records the end, then releases what the sandbox held, in that order."""
        row = await self._threads.run(self._row, sandbox_id)
        root = Path(row.layout_root)
        collected, size = await self._threads.run(_collect, root)
        live = self._live.get(sandbox_id) or self._live_for(row, {})
        summary = f"finished: {state.value}"
        if exit_code is not None:
            summary += f" (exit code {exit_code})"
        if message:
            summary += f": {message}"
        summary += "; submission collected" if collected else "; no submission.csv"
        live.writer.system(summary)
        await live.writer.close()
        stats = live.stats
        values: dict[str, object] = {
            "finished_at": _now(),
            "exit_code": exit_code,
            "failure_reason": reason.value if reason else "",
            "failure_class": reason.failure_class.value if reason else "",
            "failure_message": message,
            "submission_collected": collected,
            "artifacts_size_bytes": size,
            "cpu_seconds": stats.cpu_seconds,
            "peak_memory_bytes": stats.peak_memory_bytes,
            "gpu_utilization_percent": (
                stats.gpu_utilization_sum / stats.gpu_samples if stats.gpu_samples else 0.0
            ),
            "peak_gpu_memory_bytes": stats.peak_gpu_memory_bytes,
        }
        recorded = await self._threads.run(self._update, sandbox_id, state, values)
        log.info(
            "sandbox_finished",
            sandbox_id=sandbox_id,
            state=state.value,
            recorded=recorded,
            reason=reason.value if reason else "",
        )
        await self._release(sandbox_id)
        # Waiters (StopSandbox, followed logs) wake once the GPUs are free again.
        self._signals.notify(sandbox_id)
        if handle is not None:
            try:
                await self._backend.remove(handle)
            except BackendError:
                log.warning("sandbox_remove_failed", sandbox_id=sandbox_id)
        with contextlib.suppress(Exception):
            await self._endpoints.close(sandbox_id)
        await self._drop_live(sandbox_id)

    async def _release(self, sandbox_id: str) -> None:
        def release() -> list[str]:
            with self._sessions.begin() as session:
                return leases.release(session, sandbox_id)

        if await self._threads.run(release):
            self._queue_wake.set()

    async def _drop_live(self, sandbox_id: str) -> None:
        live = self._live.pop(sandbox_id, None)
        if live is not None:
            await live.writer.close()

    # Queries

    async def get(self, sandbox_id: str) -> SandboxRecord:
        def read() -> SandboxRecord:
            with self._sessions() as session:
                return store.to_record(session, store.get_row(session, sandbox_id))

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
        self, sandbox_id: str, after_seq: int = 0, follow: bool = False
    ) -> AsyncIterator[list[LogEntry]]:
        if after_seq < 0:
            raise invalid_field("after_seq", "must not be negative")
        return self._reader.stream(sandbox_id, after_seq, follow)

    async def list_gpus(self) -> GpuListing:
        snapshot = await self._threads.run(self._inventory.snapshot)

        def holders() -> dict[str, str]:
            with self._sessions() as session:
                return leases.holders(session, self.node)

        held = await self._threads.run(holders)
        return GpuListing(
            node=self.node,
            nvml_available=snapshot.nvml_available,
            driver_version=snapshot.driver_version,
            gpus=[
                GpuView(
                    index=g.index,
                    uuid=g.uuid,
                    name=g.name,
                    memory_total_bytes=g.memory_total_bytes,
                    memory_used_bytes=g.memory_used_bytes,
                    utilization_percent=g.utilization_percent,
                    health=g.health,
                    health_notes=list(g.health_notes),
                    uncorrected_ecc_errors=g.uncorrected_ecc_errors,
                    retired_pages=g.retired_pages,
                    mig_enabled=g.mig_enabled,
                    mig_devices=[tuple(d) for d in g.mig_devices],
                    leased_by=held.get(g.uuid, ""),
                )
                for g in snapshot.gpus
            ],
        )

    # Stopping

    async def stop(self, sandbox_id: str, grace_s: float = 0.0, reason: str = "") -> SandboxRecord:
        """Graceful stop, then kill after the grace period; ends CANCELLED."""
        if grace_s < 0:
            raise invalid_field("grace_period", "must not be negative")
        grace = grace_s or self._settings.stop_grace_s
        why = reason or "stopped on request"
        await self._ready.wait()
        row = await self._threads.run(self._row, sandbox_id)
        if SandboxState(row.state).terminal:
            return await self.get(sandbox_id)
        live = self._live.get(sandbox_id)
        if live is not None:
            live.writer.system(f"stop requested: {why}")
            await live.writer.flush()
        cancelled = await self._threads.run(
            self._update,
            sandbox_id,
            SandboxState.CANCELLED,
            {
                "finished_at": _now(),
                "stop_target": SandboxState.CANCELLED.value,
                "stop_reason": why,
                "failure_message": why,
            },
            launch_requested_at=None,
        )
        if cancelled:  # never launched: nothing runs, so nothing to wait for
            self._queued_secrets.pop(sandbox_id, None)
            self._signals.notify(sandbox_id)
            await self._release(sandbox_id)
            return await self.get(sandbox_id)
        await self._threads.run(
            self._update,
            sandbox_id,
            None,
            {
                "stop_target": SandboxState.CANCELLED.value,
                "stop_reason": why,
                "stop_grace_s": grace,
            },
            states=_ACTIVE,
            stop_target="",
        )
        if live is not None:
            live.stop.set()
        give_up = time.monotonic() + grace + _OUTPUT_DRAIN_S
        while time.monotonic() < give_up:
            record = await self.get(sandbox_id)
            # The end is recorded before the leases are released: return once both are done,
            # so a caller can reuse the GPUs at once.
            if record.state.terminal and not record.leased_gpu_uuids:
                return record
            await self._signals.wait(sandbox_id, 0.2)
        return await self.get(sandbox_id)

    # Artifacts and retention

    async def artifacts(self, sandbox_id: str) -> artifacts.Archive:
        record = await self.get(sandbox_id)
        if record.artifacts_deleted:
            raise FailedPreconditionError(
                f"the artifacts of sandbox {sandbox_id} were deleted by retention",
                reason="ARTIFACTS_DELETED",
                metadata={"sandbox_id": sandbox_id},
            )
        return await self._threads.run(
            artifacts.build_archive,
            sandbox_id,
            Path(record.layout_root),
            self._settings.work_dir / "scratch",
            self._settings.max_artifacts_bytes,
        )

    async def cleanup(self, older_than_s: float) -> list[str]:
        """Deletes the host folders of sandboxes that ended more than `older_than_s` ago."""
        return await self._threads.run(artifacts.clean_expired, self._sessions, older_than_s)

    # Queue

    async def _dispatch_queue(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._queue_wake.wait(), self._settings.queue_poll_interval_s
                )
            self._queue_wake.clear()
            try:
                started, failed = await self._threads.run(self._lease_queued)
            except Exception:
                log.exception("gpu_queue_failed")
                continue
            for sandbox_id, message in failed:
                await self._finish(
                    sandbox_id,
                    SandboxState.FAILED,
                    FailureReason.GPU_UNAVAILABLE,
                    message,
                    handle=None,
                )
            for sandbox_id in started:
                secret_values = self._queued_secrets.pop(sandbox_id, {})
                self._spawn(sandbox_id, self._start(sandbox_id, secret_values, None))

    def _lease_queued(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Leases GPUs to queued sandboxes, oldest first; stops at the first that must wait."""
        with self._sessions() as session:
            queued = [
                row
                for row in store.rows_in_states(session, [SandboxState.PENDING], node=self.node)
                if row.gpu_count and row.launch_requested_at is None
            ]
            held = store.leases_of(session, [r.id for r in queued])
            queued = [r for r in queued if not held[r.id]]
        if not queued:
            return [], []
        leasable, unhealthy = _gpu_sets(self._inventory.snapshot())
        started: list[str] = []
        failed: list[tuple[str, str]] = []
        for row in queued:
            try:
                with self._sessions.begin() as session:
                    chosen = leases.choose(
                        self.node,
                        leasable,
                        unhealthy,
                        set(leases.holders(session, self.node)),
                        count=row.gpu_count,
                        wanted=row.requested_gpu_uuids,
                    )
                    if chosen is None:
                        break
                    leases.lease(session, self.node, row.id, chosen)
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

    # Reconciling after a restart

    async def reconcile(self) -> None:
        """Adopts what still runs, finishes what vanished, removes what is not ours anymore."""
        owned = {
            h.sandbox_id: (h, running)
            for h, running in await self._backend.list_owned(self.instance_labels)
        }

        def active_rows() -> list[SandboxRow]:
            with self._sessions() as session:
                return store.rows_in_states(session, _ACTIVE, node=self.node)

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
            elif row.state == SandboxState.RUNNING:
                await self._finish(
                    row.id,
                    SandboxState.FAILED,
                    FailureReason.LOST,
                    "the sandbox vanished while the service was away",
                    handle=None,
                )
            elif row.secret_env_names:
                # PENDING: starting it needs values that died with the old process.
                await self._finish(
                    row.id,
                    SandboxState.FAILED,
                    FailureReason.LOST,
                    "the service restarted before the sandbox started, and secret values are "
                    "kept only in memory; create the sandbox again",
                    handle=None,
                )
            elif not row.gpu_count or await self._has_leases(row.id):
                # PENDING, never launched (or its launch left nothing behind): start again.
                self._spawn(row.id, self._start(row.id, {}, None))
            # Otherwise it is still queued for GPUs, and the queue picks it up.
        await self._threads.run(self._release_finished)
        self._queue_wake.set()

    async def _has_leases(self, sandbox_id: str) -> bool:
        def read() -> bool:
            with self._sessions() as session:
                return bool(store.leases_of(session, [sandbox_id])[sandbox_id])

        return await self._threads.run(read)

    def _release_finished(self) -> None:
        """Leases whose sandbox ended (a crash between the two commits) go back."""
        with self._sessions.begin() as session:
            stale = session.scalars(
                select(GpuLeaseRow.sandbox_id)
                .join(SandboxRow, SandboxRow.id == GpuLeaseRow.sandbox_id)
                .where(
                    GpuLeaseRow.node == self.node,
                    SandboxRow.state.in_([s.value for s in SandboxState if s.terminal]),
                )
            )
            for sandbox_id in set(stale):
                leases.release(session, sandbox_id)

    def _adopt(self, row: SandboxRow, handle: Handle) -> None:
        log.info("sandbox_adopted", sandbox_id=row.id, state=row.state)
        live = self._live_for(row, {})
        live.writer.system("re-attached after a service restart")
        self._spawn(row.id, self._resume(row, handle))

    async def _resume(self, row: SandboxRow, handle: Handle) -> None:
        layout = host_layout(Path(row.layout_root))
        if row.state == SandboxState.PENDING:  # launched, but RUNNING was never recorded
            started = store.utc(row.launch_requested_at) or _now()
            await self._threads.run(
                self._update,
                row.id,
                SandboxState.RUNNING,
                {
                    "backend_ref": handle.ref,
                    "image_digest": handle.image_digest,
                    "started_at": started,
                    "deadline_at": started + timedelta(seconds=row.time_limit_s),
                },
            )
            row = await self._threads.run(self._row, row.id)
        deadline = store.utc(row.deadline_at) or _now()
        remaining = max(0.0, (deadline - _now()).total_seconds())
        try:
            await self._endpoints.open(
                row.id,
                layout.sockets_dir,
                self._mint_token(row, remaining),
                NetworkMode(row.network_mode),
                list(row.allowed_hosts),
            )
        except Exception:
            log.exception("endpoints_reopen_failed", sandbox_id=row.id)
        await self._supervise(row.id, handle, layout, since=row.last_output_time)

    # Lifetime

    async def start(self) -> None:
        """Reconciles, then opens for business and starts the GPU queue and retention."""
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconcile_failed")
        self._ready.set()
        self._track(self._dispatch_queue())
        if self._settings.artifacts_retention_s > 0:
            self._track(self._retention())

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
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for live in list(self._live.values()):
            with contextlib.suppress(Exception):
                await live.writer.close()
        self._live.clear()
        self._threads.shutdown()


def _gpu_sets(inventory: Any) -> tuple[list[str], list[str]]:
    if inventory is None:
        return [], []
    leasable = [g.uuid for g in inventory.gpus if g.health != "unhealthy"]
    unhealthy = [g.uuid for g in inventory.gpus if g.health == "unhealthy"]
    return leasable, unhealthy


def _merge_usage(stats: _Stats, usage: Any) -> None:
    stats.cpu_seconds = max(stats.cpu_seconds, usage.cpu_seconds)
    stats.peak_memory_bytes = max(stats.peak_memory_bytes, usage.peak_memory_bytes)


def _collect(root: Path) -> tuple[bool, int]:
    submission = root / "submission" / "submission.csv"
    collected = submission.is_file() and not submission.is_symlink()
    return collected, artifacts.outputs_size(root) if root.is_dir() else 0
