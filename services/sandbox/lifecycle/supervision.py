"""Driving one sandbox: prepare its folder, launch it, capture its output, enforce its time
limit and stop requests, sample its usage, and hand its end to the Finisher.

Each step is recorded before it is acted on: the launch intent before the backend is asked,
RUNNING (with its deadline) before the agent is supervised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from services.common.auth import Role, TokenAuthority
from services.common.errors import MlebError
from services.sandbox.backends.base import (
    GRPC_GRADER_PORT,
    BackendError,
    Handle,
    HostLayout,
    LaunchSpec,
    NetworkMode,
)
from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow
from services.sandbox.lifecycle import quotas
from services.sandbox.lifecycle.driving import Driving
from services.sandbox.lifecycle.finishing import Finisher, requested_end
from services.sandbox.lifecycle.interfaces import Endpoints, Inventory
from services.sandbox.lifecycle.live import Stats
from services.sandbox.lifecycle.logs import LogWriter
from services.sandbox.lifecycle.phases import Phases
from services.sandbox.lifecycle.states import FailureReason, SandboxState
from services.sandbox.node.layout import (
    CompetitionSource,
    LayoutBuilder,
    host_layout,
)
from services.sandbox.node.public_fetch import RegistryFetchError
from services.sandbox.records import Competition, DescriptionVariant, LogStream

log = structlog.get_logger("mleb.sandbox")

# After the agent exits, how long its remaining output may take to arrive.
OUTPUT_DRAIN_S = 30.0


class Supervisor:
    def __init__(
        self,
        driving: Driving,
        *,
        competitions: CompetitionSource,
        layouts: LayoutBuilder,
        endpoints: Endpoints,
        inventory: Inventory,
        tokens: TokenAuthority,
        finisher: Finisher,
    ) -> None:
        self._rows = driving.rows
        self._threads = driving.threads
        self._tasks = driving.tasks
        self._backend = driving.backend
        self._competitions = competitions
        self._layouts = layouts
        self._endpoints = endpoints
        self._inventory = inventory
        self._tokens = tokens
        self._settings = driving.settings
        self._live = driving.live
        self._finisher = finisher
        self._instance_labels = driving.instance_labels

    def spawn(self, sandbox_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Drives the sandbox in the background; a crash of the driver fails the sandbox."""
        self._tasks.track(self._guarded(sandbox_id, work))

    async def _guarded(self, sandbox_id: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:
            log.exception("sandbox_task_failed", sandbox_id=sandbox_id)
            with contextlib.suppress(Exception):
                await self._finisher.fail(
                    sandbox_id,
                    FailureReason.ENGINE_ERROR,
                    f"the service failed while driving the sandbox: {type(exc).__name__}",
                )

    async def start(
        self, sandbox_id: str, secret_values: dict[str, str], competition: Competition | None
    ) -> None:
        """Prepares and launches a PENDING sandbox whose GPUs (if any) are leased."""
        phases = Phases()
        row = await self._threads.run(self._rows.get, sandbox_id)
        if row.state != SandboxState.PENDING:
            return
        live = self._live.for_row(row, secret_values)
        writer = live.writer
        await writer.system(
            f"sandbox {sandbox_id} for competition {row.competition_id}: preparing "
            f"(backend {row.backend}, node {row.node})"
        )
        root = Path(row.layout_root)
        try:
            if competition is None:
                competition = await self._competitions.get(
                    row.competition_id, DescriptionVariant(row.description_variant)
                )
            layout = await self._layouts.prepare(
                root,
                competition,
                sandbox_id,
                shared_mount=self._backend.capabilities.mounts_public_cache,
            )
            phases.mark("prepare")
        except (MlebError, RegistryFetchError) as exc:
            message = exc.message if isinstance(exc, MlebError) else str(exc)
            await self._finisher.fail(
                sandbox_id,
                FailureReason.REGISTRY_ERROR,
                f"public data could not be fetched: {message}",
            )
            return
        except OSError as exc:
            await self._finisher.fail(
                sandbox_id,
                FailureReason.RUNTIME_ERROR,
                f"the sandbox folder could not be prepared: {exc}",
            )
            return
        launching = await self._threads.run(
            self._rows.update,
            sandbox_id,
            None,
            {"launch_requested_at": datetime.now(UTC)},
            states=[SandboxState.PENDING],
        )
        if not launching:  # cancelled while the data was prepared
            await self._live.drop(sandbox_id)
            return
        phases.mark("launch_intent")
        await self._launch(row, layout, secret_values, phases, competition.listing_digest)

    async def _launch(
        self,
        row: SandboxRow,
        layout: HostLayout,
        secret_values: dict[str, str],
        phases: Phases,
        listing_digest: str,
    ) -> None:
        sandbox_id = row.id
        writer = self._live[sandbox_id].writer
        # A scheduler may queue the agent first: its token must outlive the queue too.
        queue_s = self._settings.max_queue_s if self._backend.capabilities.scheduler_placed else 0
        token = self._mint_token(row, queue_s + row.time_limit_s)
        writer.redact.add(token)
        try:
            if not self._backend.capabilities.endpoints_on_node:
                await self._endpoints.open(
                    sandbox_id,
                    layout.sockets_dir,
                    token,
                    NetworkMode(row.network_mode),
                    list(row.allowed_hosts),
                )
        except Exception as exc:
            log.exception("endpoints_open_failed", sandbox_id=sandbox_id)
            await self._finisher.fail(
                sandbox_id,
                FailureReason.ENGINE_ERROR,
                f"the sandbox's endpoints could not be opened: {exc}",
            )
            return
        phases.mark("endpoints")
        gpu_uuids = await self._threads.run(self._rows.leased_gpus, sandbox_id)
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
            labels=dict(self._instance_labels),
            time_limit_s=row.time_limit_s,
            tmp_bytes=row.tmp_bytes,
            gpu_count=row.gpu_count,
            stop_grace_s=self._settings.stop_grace_s,
            listing_digest=listing_digest,
        )
        gpus = f", GPUs {', '.join(gpu_uuids)}" if gpu_uuids else ""
        network = row.network_mode
        await writer.system(f"launching image {row.image or '(none)'}{gpus}; network {network}")
        try:
            await self._finisher.evidence.launching(row, row.image, gpu_uuids)
        except MlebError as exc:
            await self._finisher.fail(sandbox_id, FailureReason.REGISTRY_ERROR, str(exc))
            return
        phases.mark("audit_launching")
        try:
            handle = await self._backend.launch(spec)
        except BackendError as exc:
            await self._finisher.backend_failed(sandbox_id, exc)
            return
        phases.mark("backend_launch")
        if self._backend.capabilities.scheduler_placed:
            # Recorded while it queues, so a restart finds the job and a stop cancels it.
            await self._threads.run(
                self._rows.update, sandbox_id, None, {"backend_ref": handle.ref}
            )
            started_handle = await self._until_started(sandbox_id, handle)
            if started_handle is None:
                return
            handle = started_handle
        # The line is stored before the state: a kill in between leaves a PENDING sandbox
        # that a restart adopts and marks RUNNING, never a RUNNING one without its line.
        await writer.system(
            f"running{_placement(handle)} (time limit {row.time_limit_s:g}s; disk quota "
            f"{self._disk_quota(row)} bytes, log budget "
            f"{row.log_bytes or self._settings.default_log_bytes} bytes)"
        )
        await self._record_running(sandbox_id, handle, _start_time(handle), row.time_limit_s)
        phases.mark("running_recorded")
        log.info("sandbox_start_phases", sandbox_id=sandbox_id, **phases.ms)
        await self._supervise(sandbox_id, handle, layout, since=0.0)

    async def resume(self, row: SandboxRow, handle: Handle) -> None:
        """Supervises again a sandbox the backend still runs after a service restart."""
        await self._live[row.id].writer.system("re-attached after a service restart")
        layout = host_layout(Path(row.layout_root))
        if row.state == SandboxState.PENDING:  # launched, but RUNNING was never recorded
            if self._backend.capabilities.scheduler_placed:
                # Perhaps still queued: it runs from when the scheduler starts it.
                started_handle = await self._until_started(row.id, handle)
                if started_handle is None:
                    return
                # From the agent's start, not from now: the service's downtime counts.
                handle, started = started_handle, _start_time(started_handle)
            else:
                started = store.utc(row.launch_requested_at) or datetime.now(UTC)
            await self._record_running(row.id, handle, started, row.time_limit_s)
            row = await self._threads.run(self._rows.get, row.id)
        deadline = store.utc(row.deadline_at) or datetime.now(UTC)
        remaining = max(0.0, (deadline - datetime.now(UTC)).total_seconds())
        # A backend serving them on the agent's node kept them open all along.
        if not self._backend.capabilities.endpoints_on_node:
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

    async def _record_running(
        self, sandbox_id: str, handle: Handle, started: datetime, time_limit_s: float
    ) -> None:
        values: dict[str, Any] = {
            "backend_ref": handle.ref,
            "image_digest": handle.image_digest,
            "started_at": started,
            "deadline_at": started + timedelta(seconds=time_limit_s),
            "disk_enforcement": quotas.enforcement(self._backend.capabilities).value,
        }
        if handle.gpus:  # allocated by a scheduler: kept as the run's granted GPUs
            values["granted_gpu_uuids"] = list(handle.gpus)
        await self._threads.run(self._rows.update, sandbox_id, SandboxState.RUNNING, values)

    async def _until_started(self, sandbox_id: str, handle: Handle) -> Handle | None:
        """Waits while the scheduler queues the agent; a stop meanwhile cancels the job. None
        when the sandbox ended before the agent ran (it is then finished)."""
        live = self._live[sandbox_id]
        starting = asyncio.create_task(self._backend.started(handle))
        stopper = asyncio.create_task(live.stop.wait())
        try:
            while not starting.done():
                await asyncio.wait(
                    {starting, stopper},
                    timeout=self._settings.queue_poll_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                # Stop intents may come from another process sharing the database.
                row = await self._threads.run(self._rows.get, sandbox_id)
                if not row.stop_target and _queued_too_long(row, self._settings.max_queue_s):
                    await self._threads.run(
                        self._rows.update,
                        sandbox_id,
                        None,
                        {
                            "stop_target": SandboxState.FAILED.value,
                            "stop_reason": f"queued longer than {self._settings.max_queue_s:g}s "
                            "(MLEB_SANDBOX_MAX_QUEUE_S), past what its token was minted for",
                            "stop_failure_reason": FailureReason.ENGINE_ERROR.value,
                        },
                        stop_target="",
                    )
                    row = await self._threads.run(self._rows.get, sandbox_id)
                if row.stop_target and not starting.done():
                    starting.cancel()
                    await live.writer.system(f"stopped while queued: {row.stop_reason}")
                    await self._dequeue(handle)
                    await self._finisher.finish(sandbox_id, *requested_end(row), handle=handle)
                    return None
            return starting.result()
        except BackendError as exc:
            await self._finisher.backend_failed(sandbox_id, exc, handle)
            return None
        finally:
            starting.cancel()
            stopper.cancel()

    async def _dequeue(self, handle: Handle) -> None:
        """Takes a queued agent out of its scheduler before its end is recorded, so that a
        client that reads the end finds the job gone too. The finisher's remove tries again
        when this fails."""
        try:
            await self._backend.stop(handle, 0.0)
        except Exception:  # best effort: whatever went wrong, the end is still recorded
            log.exception("dequeue_failed", sandbox_id=handle.sandbox_id)

    def _mint_token(self, row: SandboxRow, valid_for_s: float) -> str:
        return self._tokens.issue(
            Role.SANDBOX,
            f"sandbox:{row.id}",
            ttl_s=valid_for_s + self._settings.token_margin_s,
            sandbox_id=row.id,
            competition_id=row.competition_id,
            # Its validation calls are audited under the lab that owns it.
            tenant=row.tenant,
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
        row = await self._threads.run(self._rows.get, sandbox_id)
        capture = asyncio.create_task(self._capture(handle, live.writer, since))
        sampler = asyncio.create_task(self._sample(handle, live.stats, sandbox_id))
        watchdog = asyncio.create_task(self._watch_disk(handle, layout, row))
        waiter = asyncio.create_task(self._backend.wait(handle))
        stopper = asyncio.create_task(live.stop.wait())
        deadline = store.utc(row.deadline_at)
        stop_target = row.stop_target
        try:
            while not waiter.done() and not stop_target:
                remaining = (deadline - datetime.now(UTC)).total_seconds() if deadline else 0.0
                if remaining <= 0:
                    await self._threads.run(
                        self._rows.update,
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
                row = await self._threads.run(self._rows.get, sandbox_id)
                stop_target = row.stop_target
            grace = row.stop_grace_s or self._settings.stop_grace_s
            if stop_target and not waiter.done():
                await live.writer.system(f"stopping: {row.stop_reason}; killing after {grace:g}s")
            try:
                if stop_target and not waiter.done():
                    await self._backend.stop(handle, grace)
                exit_info = await waiter
            except BackendError as exc:
                # With its handle: removing it ends whatever a failed stop left running.
                await self._end_capture(capture)
                sampler.cancel()
                await self._finisher.backend_failed(sandbox_id, exc, handle)
                return
            await self._end_capture(capture)
        finally:
            for task in (stopper, sampler, watchdog, capture, waiter):
                task.cancel()
        with contextlib.suppress(BackendError):
            _merge_usage(live.stats, await self._backend.usage(handle))
        state, reason, message = SandboxState.SUCCEEDED, None, ""
        if stop_target:
            state, reason, message = requested_end(row)
        elif exit_info.oom_killed:
            state, reason = SandboxState.FAILED, FailureReason.OUT_OF_MEMORY
            message = f"killed for exceeding its memory limit of {row.memory_bytes} bytes"
        elif exit_info.exit_code != 0:
            state, reason = SandboxState.FAILED, FailureReason.NONZERO_EXIT
            message = f"the agent exited with code {exit_info.exit_code}"
        await self._finisher.finish(
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
            await writer.system(f"log capture stopped: {exc}")

    async def _end_capture(self, capture: asyncio.Task[None]) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(capture, OUTPUT_DRAIN_S)

    def _disk_quota(self, row: SandboxRow) -> int:
        return row.disk_bytes or self._settings.default_disk_bytes

    async def _watch_disk(self, handle: Handle, layout: HostLayout, row: SandboxRow) -> None:
        """Measures the output folders and the writable layer; past the quota, records a
        FAILED stop intent (DISK_QUOTA_EXCEEDED) and wakes the supervisor to act on it."""
        live = self._live[row.id]
        quota = self._disk_quota(row)
        max_entries = self._settings.max_output_entries
        while True:
            outputs = await self._threads.run(quotas.outputs_size, layout, max_entries)
            try:
                layer = await self._backend.writable_layer_bytes(handle) or 0
            except BackendError:  # gone or busy: the waiter hears of it
                layer = 0
            live.stats.peak_disk_bytes = max(live.stats.peak_disk_bytes, outputs.bytes + layer)
            why = quotas.exceeded(outputs, layer, quota, max_entries)
            if why is not None:
                log.info("disk_quota_exceeded", sandbox_id=row.id, why=why)
                await self._threads.run(
                    self._rows.update,
                    row.id,
                    None,
                    {
                        "stop_target": SandboxState.FAILED.value,
                        "stop_reason": why,
                        "stop_failure_reason": FailureReason.DISK_QUOTA_EXCEEDED.value,
                        "stop_grace_s": self._settings.stop_grace_s,
                    },
                    states=[SandboxState.RUNNING],
                    stop_target="",
                )
                live.stop.set()
                return
            await asyncio.sleep(self._settings.disk_check_interval_s)

    async def _sample(self, handle: Handle, stats: Stats, sandbox_id: str) -> None:
        interval = self._settings.sample_interval_s
        gpu_uuids = await self._threads.run(self._rows.leased_gpus, sandbox_id)
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


def _queued_too_long(row: SandboxRow, max_queue_s: float) -> bool:
    launched = store.utc(row.launch_requested_at)
    return launched is not None and datetime.now(UTC) - launched > timedelta(seconds=max_queue_s)


def _start_time(handle: Handle) -> datetime:
    """When the agent started: as its scheduler's node reported, else now (at launch)."""
    if handle.started_at:
        return min(datetime.fromtimestamp(handle.started_at, UTC), datetime.now(UTC))
    return datetime.now(UTC)


def _placement(handle: Handle) -> str:
    """Where a scheduler placed the agent, for its log."""
    where = f" on {handle.placement}" if handle.placement else ""
    return where + (f" with GPUs {', '.join(handle.gpus)}" if handle.gpus else "")


def _merge_usage(stats: Stats, usage: Any) -> None:
    stats.cpu_seconds = max(stats.cpu_seconds, usage.cpu_seconds)
    stats.peak_memory_bytes = max(stats.peak_memory_bytes, usage.peak_memory_bytes)
