"""SandboxService over gRPC: proto in, SandboxCore, proto out. Nothing else lives here.

Secret env values go from the request straight to the core; no response carries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from mleb.common.v1 import common_pb2
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2, sandbox_service_pb2_grpc

from services.common.auth import Role, current_caller
from services.common.errors import UnauthenticatedError, invalid_field
from services.common.signing import public_keys_proto
from services.sandbox.backends.base import NetworkMode
from services.sandbox.gpus.simulated_nvml import is_simulated
from services.sandbox.lifecycle.core import SandboxCore
from services.sandbox.lifecycle.states import FailureClass, SandboxState
from services.sandbox.records import (
    DescriptionVariant,
    GpuListing,
    LogEntry,
    LogStream,
    SandboxFilter,
    SandboxRecord,
    SandboxRequest,
)

_LAB = frozenset({Role.SERVICE, Role.LAB})
RPC_ROLES: dict[str, frozenset[Role]] = {
    "CreateSandbox": _LAB,
    "GetSandbox": _LAB,
    "ListSandboxes": _LAB,
    "StreamLogs": _LAB,
    "StopSandbox": _LAB,
    "DownloadArtifacts": _LAB,
    "ListGpus": _LAB,
    "ListPublicKeys": _LAB,
}

_STATES = {
    SandboxState.PENDING: sandbox_pb2.SANDBOX_STATE_PENDING,
    SandboxState.RUNNING: sandbox_pb2.SANDBOX_STATE_RUNNING,
    SandboxState.SUCCEEDED: sandbox_pb2.SANDBOX_STATE_SUCCEEDED,
    SandboxState.FAILED: sandbox_pb2.SANDBOX_STATE_FAILED,
    SandboxState.TIMED_OUT: sandbox_pb2.SANDBOX_STATE_TIMED_OUT,
    SandboxState.CANCELLED: sandbox_pb2.SANDBOX_STATE_CANCELLED,
}
_STATES_FROM_PROTO = {value: state for state, value in _STATES.items()}
_FAILURE_CLASSES = {
    FailureClass.AGENT: sandbox_pb2.FAILURE_CLASS_AGENT,
    FailureClass.INFRASTRUCTURE: sandbox_pb2.FAILURE_CLASS_INFRASTRUCTURE,
}
_NETWORKS = {
    NetworkMode.NONE: sandbox_pb2.NETWORK_MODE_NONE,
    NetworkMode.ALLOWLIST: sandbox_pb2.NETWORK_MODE_ALLOWLIST,
    NetworkMode.INTERNET: sandbox_pb2.NETWORK_MODE_INTERNET,
}
_NETWORKS_FROM_PROTO = {value: mode for mode, value in _NETWORKS.items()}
_VARIANTS = {
    DescriptionVariant.PLAIN: common_pb2.DESCRIPTION_VARIANT_PLAIN,
    DescriptionVariant.OBFUSCATED: common_pb2.DESCRIPTION_VARIANT_OBFUSCATED,
}
_VARIANTS_FROM_PROTO = {value: variant for variant, value in _VARIANTS.items()}
_STREAMS = {
    LogStream.STDOUT: sandbox_pb2.LOG_STREAM_STDOUT,
    LogStream.STDERR: sandbox_pb2.LOG_STREAM_STDERR,
    LogStream.SYSTEM: sandbox_pb2.LOG_STREAM_SYSTEM,
}
_HEALTH = {
    "healthy": sandbox_pb2.GPU_HEALTH_HEALTHY,
    "degraded": sandbox_pb2.GPU_HEALTH_DEGRADED,
    "unhealthy": sandbox_pb2.GPU_HEALTH_UNHEALTHY,
}


def _timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _seconds_timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


def _backend_enum(name: str) -> str:
    """The enum value spelled after the registered name, if the proto has one (a backend
    added later is still named by backend_name)."""
    value = f"BACKEND_{name.upper()}"
    known = sandbox_pb2.Backend.DESCRIPTOR.values_by_name
    return value if value in known else "BACKEND_UNSPECIFIED"


def sandbox_to_proto(record: SandboxRecord) -> sandbox_pb2.Sandbox:
    message = sandbox_pb2.Sandbox(
        id=record.id,
        competition_id=record.competition_id,
        image=record.image,
        image_digest=record.image_digest,
        command=record.command,
        env=record.env,
        secret_env_names=record.secret_env_names,
        resources=sandbox_pb2.Resources(
            cpus=record.cpus,
            memory_bytes=record.memory_bytes,
            shm_bytes=record.shm_bytes,
            pids_limit=record.pids_limit,
            gpu_count=record.gpu_count,
            gpu_uuids=record.requested_gpu_uuids,
            disk_bytes=record.disk_bytes,
            tmp_bytes=record.tmp_bytes,
            log_bytes=record.log_bytes,
        ),
        time_limit=_duration(record.time_limit_s),
        network=sandbox_pb2.NetworkPolicy(
            mode=_NETWORKS[record.network], allowed_hosts=record.allowed_hosts
        ),
        description_variant=_VARIANTS[record.description_variant],
        labels=record.labels,
        owner=record.owner,
        idempotency_key=record.idempotency_key,
        wait_for_gpus=record.wait_for_gpus,
        mlebench_compat=record.mlebench_compat,
        backend=_backend_enum(record.backend),
        backend_name=record.backend,
        state=_STATES[record.state],
        failure_class=(
            _FAILURE_CLASSES[record.failure_class]
            if record.failure_class
            else sandbox_pb2.FAILURE_CLASS_UNSPECIFIED
        ),
        failure_reason=(
            sandbox_pb2.FailureReason.Value(f"FAILURE_REASON_{record.failure_reason.value}")
            if record.failure_reason
            else sandbox_pb2.FAILURE_REASON_UNSPECIFIED
        ),
        failure_message=record.failure_message,
        created_at=_timestamp(record.created_at),
        started_at=_timestamp(record.started_at),
        finished_at=_timestamp(record.finished_at),
        leased_gpu_uuids=record.leased_gpu_uuids,
        simulated_gpus=any(map(is_simulated, record.leased_gpu_uuids)),
        usage=sandbox_pb2.ResourceUsage(
            cpu_seconds=record.usage.cpu_seconds,
            peak_memory_bytes=record.usage.peak_memory_bytes,
            gpu_utilization_percent=record.usage.gpu_utilization_percent,
            peak_gpu_memory_bytes=record.usage.peak_gpu_memory_bytes,
            artifacts_size_bytes=record.usage.artifacts_size_bytes,
            peak_disk_bytes=record.usage.peak_disk_bytes,
            log_bytes=record.usage.log_bytes,
            log_lines_dropped=record.usage.log_lines_dropped,
        ),
        node=record.node,
        submission_collected=record.submission_collected,
        last_log_seq=record.last_log_seq,
        tenant=record.tenant,
        egress=[
            sandbox_pb2.EgressDestination(
                host=d.host,
                port=d.port,
                address=d.address,
                verdict=sandbox_pb2.EgressVerdict.Value(f"EGRESS_VERDICT_{d.verdict.value}"),
                connections=d.connections,
                bytes_sent=d.bytes_sent,
                bytes_received=d.bytes_received,
                first_at=_timestamp(d.first_at),
                last_at=_timestamp(d.last_at),
            )
            for d in record.egress
        ],
        egress_omitted_connections=record.egress_omitted_connections,
        attestation=record.attestation,
        attestation_error=record.attestation_error,
        disk_enforcement=(
            sandbox_pb2.DiskEnforcement.Value(f"DISK_ENFORCEMENT_{record.disk_enforcement}")
            if record.disk_enforcement
            else sandbox_pb2.DISK_ENFORCEMENT_UNSPECIFIED
        ),
    )
    if record.exit_code is not None:
        message.exit_code = record.exit_code
    return message


def request_from_proto(request: sandbox_service_pb2.CreateSandboxRequest) -> SandboxRequest:
    network = request.network.mode
    if network != sandbox_pb2.NETWORK_MODE_UNSPECIFIED and network not in _NETWORKS_FROM_PROTO:
        raise invalid_field("network.mode", f"unknown value {network}")
    variant = request.description_variant
    if (
        variant != common_pb2.DESCRIPTION_VARIANT_UNSPECIFIED
        and variant not in _VARIANTS_FROM_PROTO
    ):
        raise invalid_field("description_variant", f"unknown value {variant}")
    resources = request.resources
    return SandboxRequest(
        competition_id=request.competition_id,
        image=request.image,
        command=list(request.command),
        env=dict(request.env),
        secret_env=dict(request.secret_env),
        cpus=resources.cpus,
        memory_bytes=resources.memory_bytes,
        shm_bytes=resources.shm_bytes,
        pids_limit=resources.pids_limit,
        gpu_count=resources.gpu_count,
        gpu_uuids=list(resources.gpu_uuids),
        disk_bytes=resources.disk_bytes,
        tmp_bytes=resources.tmp_bytes,
        log_bytes=resources.log_bytes,
        time_limit_s=request.time_limit.ToNanoseconds() / 1e9,
        network=_NETWORKS_FROM_PROTO.get(network, NetworkMode.NONE),
        allowed_hosts=list(request.network.allowed_hosts),
        description_variant=_VARIANTS_FROM_PROTO.get(variant, DescriptionVariant.PLAIN),
        labels=dict(request.labels),
        owner=request.owner,
        idempotency_key=request.idempotency_key,
        wait_for_gpus=request.wait_for_gpus,
        mlebench_compat=request.mlebench_compat,
    )


def log_entry_to_proto(entry: LogEntry) -> sandbox_pb2.LogEntry:
    return sandbox_pb2.LogEntry(
        seq=entry.seq,
        time=_seconds_timestamp(entry.time),
        stream=_STREAMS[entry.stream],
        text=entry.text,
    )


def gpus_to_proto(listing: GpuListing) -> sandbox_service_pb2.ListGpusResponse:
    return sandbox_service_pb2.ListGpusResponse(
        node=listing.node,
        nvml_available=listing.nvml_available,
        driver_version=listing.driver_version,
        gpus=[
            sandbox_pb2.Gpu(
                index=g.index,
                uuid=g.uuid,
                name=g.name,
                memory_total_bytes=g.memory_total_bytes,
                memory_used_bytes=g.memory_used_bytes,
                utilization_percent=g.utilization_percent,
                health=_HEALTH.get(g.health, sandbox_pb2.GPU_HEALTH_UNSPECIFIED),
                health_notes=g.health_notes,
                uncorrected_ecc_errors=g.uncorrected_ecc_errors,
                retired_pages=g.retired_pages,
                mig_enabled=g.mig_enabled,
                mig_devices=[
                    sandbox_pb2.MigDevice(uuid=uuid, name=name, memory_total_bytes=memory)
                    for uuid, name, memory in g.mig_devices
                ],
                leased_by=listing.leased_by.get(g.uuid, ""),
                simulated=g.simulated,
            )
            for g in listing.gpus
        ],
    )


def _tenant_scope() -> str | None:
    """The lab whose sandboxes this call may touch; None (all of them) for the service role."""
    caller = current_caller()
    if caller.role is Role.SERVICE:
        return None
    if not caller.tenant_id:
        raise UnauthenticatedError("this token names no subject or tenant", reason="BAD_TOKEN")
    return caller.tenant_id


def _required_id(sandbox_id: str) -> str:
    if not sandbox_id:
        raise invalid_field("sandbox_id", "required")
    return sandbox_id


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await asyncio.to_thread(next, chunks, b"")) != b"":
        yield chunk


class SandboxServicer(sandbox_service_pb2_grpc.SandboxServiceServicer):
    def __init__(self, core: SandboxCore) -> None:
        self._core = core

    async def CreateSandbox(
        self, request: sandbox_service_pb2.CreateSandboxRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.CreateSandboxResponse:
        caller = current_caller()
        record, created = await self._core.create(
            request_from_proto(request), caller.subject, caller.tenant_id
        )
        return sandbox_service_pb2.CreateSandboxResponse(
            sandbox=sandbox_to_proto(record), created=created
        )

    async def GetSandbox(
        self, request: sandbox_service_pb2.GetSandboxRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.GetSandboxResponse:
        record = await self._core.get(_required_id(request.sandbox_id), _tenant_scope())
        return sandbox_service_pb2.GetSandboxResponse(sandbox=sandbox_to_proto(record))

    async def ListSandboxes(
        self, request: sandbox_service_pb2.ListSandboxesRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.ListSandboxesResponse:
        states = []
        for value in request.states:
            if value not in _STATES_FROM_PROTO:
                raise invalid_field("states", f"unknown state {value}")
            states.append(_STATES_FROM_PROTO[value])
        page = await self._core.list(
            SandboxFilter(
                labels=dict(request.labels),
                states=states,
                owner=request.owner,
                competition_id=request.competition_id,
                tenant=_tenant_scope(),
            ),
            request.page_size,
            request.page_token,
        )
        return sandbox_service_pb2.ListSandboxesResponse(
            sandboxes=[sandbox_to_proto(r) for r in page.sandboxes],
            next_page_token=page.next_page_token,
        )

    async def StreamLogs(
        self, request: sandbox_service_pb2.StreamLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sandbox_service_pb2.StreamLogsResponse]:
        pages = self._core.stream_logs(
            _required_id(request.sandbox_id), request.after_seq, request.follow, _tenant_scope()
        )
        async for entries in pages:
            yield sandbox_service_pb2.StreamLogsResponse(
                entries=[log_entry_to_proto(e) for e in entries]
            )

    async def StopSandbox(
        self, request: sandbox_service_pb2.StopSandboxRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.StopSandboxResponse:
        record = await self._core.stop(
            _required_id(request.sandbox_id),
            request.grace_period.ToNanoseconds() / 1e9,
            request.reason,
            _tenant_scope(),
        )
        return sandbox_service_pb2.StopSandboxResponse(sandbox=sandbox_to_proto(record))

    async def DownloadArtifacts(
        self,
        request: sandbox_service_pb2.DownloadArtifactsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[sandbox_service_pb2.DownloadArtifactsResponse]:
        archive = await self._core.artifacts(_required_id(request.sandbox_id), _tenant_scope())
        try:
            first = True
            async for chunk in _in_thread(archive.chunks()):
                if first:
                    first = False
                    yield sandbox_service_pb2.DownloadArtifactsResponse(
                        data=chunk, total_size_bytes=archive.size_bytes, sha256=archive.sha256
                    )
                else:
                    yield sandbox_service_pb2.DownloadArtifactsResponse(data=chunk)
        finally:
            archive.remove()

    async def ListGpus(
        self, request: sandbox_service_pb2.ListGpusRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.ListGpusResponse:
        return gpus_to_proto(await self._core.list_gpus(_tenant_scope()))

    async def ListPublicKeys(
        self, request: sandbox_service_pb2.ListPublicKeysRequest, context: grpc.aio.ServicerContext
    ) -> sandbox_service_pb2.ListPublicKeysResponse:
        return sandbox_service_pb2.ListPublicKeysResponse(
            keys=public_keys_proto(self._core.signing_keys)
        )
