"""Create requests: validation and defaults, idempotent repeats, and the row (with its GPU
leases) that records a new sandbox as PENDING."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    FieldViolation,
    invalid_field,
    shown,
)
from services.sandbox.backends import registry
from services.sandbox.backends.base import NetworkMode
from services.sandbox.config import SandboxSettings
from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow
from services.sandbox.gpus import leases
from services.sandbox.lifecycle import request_checks
from services.sandbox.lifecycle.states import SandboxState
from services.sandbox.records import SandboxRecord, SandboxRequest

# Racing creates retry this often when another transaction takes the GPUs they chose.
_LEASE_ATTEMPTS = 20
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
# Set by the service for the agent; a request may not override them.
RESERVED_ENV = frozenset(
    {"MLEB_SANDBOX_TOKEN", "MLEB_GRADER_ADDR", "MLEB_SANDBOX_ID", "MLEB_COMPETITION_ID"}
)


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
        "resources.disk_bytes": request.disk_bytes,
        "resources.tmp_bytes": request.tmp_bytes,
        "resources.log_bytes": request.log_bytes,
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
        "resources.disk_bytes": row.disk_bytes,
        "resources.tmp_bytes": row.tmp_bytes,
        "resources.log_bytes": row.log_bytes,
        "time_limit": row.time_limit_s,
        "network.mode": row.network_mode,
        "network.allowed_hosts": list(row.allowed_hosts),
        "description_variant": row.description_variant,
        "labels": labels,
        "owner": row.owner,
        "wait_for_gpus": row.wait_for_gpus,
        "mlebench_compat": row.mlebench_compat,
    }


def _check_agent(request: SandboxRequest, backend_name: str) -> None:
    """An image where the backend runs images, else a command to run."""
    if registry.provider(backend_name).capabilities.needs_image:
        if not request.image:
            raise invalid_field("image", "required")
    elif not request.command:
        raise invalid_field(
            "command", f"the {backend_name} backend runs no image, so it needs a command"
        )


def normalize(
    request: SandboxRequest, caller_subject: str, settings: SandboxSettings, backend_name: str
) -> SandboxRequest:
    """Checks a create request and fills in the service's defaults."""
    if not request.competition_id:
        raise invalid_field("competition_id", "required")
    _check_agent(request, backend_name)
    for name, number in (
        ("resources.cpus", request.cpus),
        ("resources.memory_bytes", request.memory_bytes),
        ("resources.shm_bytes", request.shm_bytes),
        ("resources.pids_limit", request.pids_limit),
        ("resources.gpu_count", request.gpu_count),
        ("resources.disk_bytes", request.disk_bytes),
        ("resources.tmp_bytes", request.tmp_bytes),
        ("resources.log_bytes", request.log_bytes),
        ("time_limit", request.time_limit_s),
    ):
        if number < 0:
            raise invalid_field(name, "must not be negative")
    request_checks.check_create_request(request, settings.request_limits)
    memory = request.memory_bytes or settings.default_memory_bytes
    disk = request.disk_bytes or settings.default_disk_bytes
    log_budget = request.log_bytes or settings.default_log_bytes
    if disk > settings.max_disk_bytes:
        raise invalid_field("resources.disk_bytes", f"at most {settings.max_disk_bytes} bytes")
    if log_budget > settings.max_log_bytes:
        raise invalid_field("resources.log_bytes", f"at most {settings.max_log_bytes} bytes")
    if request.tmp_bytes > memory:
        raise invalid_field(
            "resources.tmp_bytes", "/tmp is a tmpfs inside the memory limit: at most memory_bytes"
        )
    time_limit = request.time_limit_s or settings.default_time_limit_s
    if time_limit > settings.max_time_limit_s:
        raise invalid_field("time_limit", f"at most {settings.max_time_limit_s:g} seconds")
    gpu_uuids = list(dict.fromkeys(request.gpu_uuids))
    gpu_count = request.gpu_count
    if gpu_uuids and registry.provider(backend_name).capabilities.scheduler_placed:
        raise invalid_field(
            "resources.gpu_uuids",
            f"the {backend_name} backend's scheduler chooses the GPUs: ask for a gpu_count",
        )
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
            if not _ENV_NAME.fullmatch(name):
                raise invalid_field(f"{source}", f"{shown(name)} is not a variable name")
            if name in RESERVED_ENV:
                raise invalid_field(f"{source}.{name}", "set by the service")
    if overlap := sorted(set(request.env) & set(request.secret_env)):
        raise invalid_field("secret_env", f"also in env: {', '.join(overlap)}")
    # Lengths were checked at the door (services.common.field_limits).
    for key in request.labels:
        if not _LABEL_KEY.fullmatch(key):
            raise invalid_field("labels", f"{shown(key)} is not a label key")
    return replace(
        request,
        cpus=request.cpus or settings.default_cpus,
        memory_bytes=memory,
        disk_bytes=disk,
        tmp_bytes=request.tmp_bytes or memory // 2,
        log_bytes=log_budget,
        shm_bytes=request.shm_bytes or settings.default_shm_bytes,
        pids_limit=request.pids_limit or settings.default_pids_limit,
        gpu_count=gpu_count,
        gpu_uuids=gpu_uuids,
        time_limit_s=time_limit,
        owner=request.owner or caller_subject,
    )


def same_as_before(
    sessions: sessionmaker[Session], request: SandboxRequest
) -> SandboxRecord | None:
    """The sandbox an earlier request with the same idempotency key made, if any; raises when
    that request asked for something else."""
    with sessions() as session:
        row = store.find_by_idempotency_key(session, request.idempotency_key, request.tenant)
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


def _new_row(
    sandbox_id: str, request: SandboxRequest, settings: SandboxSettings, backend_name: str
) -> SandboxRow:
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
        disk_bytes=request.disk_bytes,
        tmp_bytes=request.tmp_bytes,
        log_bytes=request.log_bytes,
        time_limit_s=request.time_limit_s,
        network_mode=request.network.value,
        allowed_hosts=list(request.allowed_hosts),
        description_variant=request.description_variant.value,
        owner=request.owner,
        tenant=request.tenant,
        idempotency_key=request.idempotency_key or None,
        wait_for_gpus=request.wait_for_gpus,
        mlebench_compat=request.mlebench_compat,
        backend=backend_name,
        state=SandboxState.PENDING.value,
        failure_class="",
        failure_reason="",
        failure_message="",
        exit_code=None,
        created_at=datetime.now(UTC),
        stop_target="",
        stop_reason="",
        stop_grace_s=0.0,
        node=settings.node,
        instance_id=settings.instance_id,
        backend_ref="",
        cpu_seconds=0.0,
        peak_memory_bytes=0,
        gpu_utilization_percent=0.0,
        peak_gpu_memory_bytes=0,
        artifacts_size_bytes=0,
        submission_collected=False,
        last_log_seq=0,
        last_output_time=0.0,
        layout_root=str(settings.work_dir / "sandboxes" / sandbox_id),
        egress_omitted_connections=0,
        disk_enforcement="",
        peak_disk_bytes=0,
        agent_log_bytes=0,
        log_lines_dropped=0,
        stop_failure_reason="",
    )


def insert(
    sessions: sessionmaker[Session],
    request: SandboxRequest,
    inventory: Any,
    settings: SandboxSettings,
    backend_name: str,
) -> tuple[SandboxRecord, bool, bool]:
    """Inserts the row and, in the same transaction, its GPU leases. Returns
    (record, created, queued)."""
    sandbox_id = new_sandbox_id()
    leasable, unhealthy = leases.gpu_sets(inventory)
    node = settings.node
    if inventory is not None and not inventory.nvml_available:
        raise FailedPreconditionError(
            f"node {node} has no usable GPUs (NVML is not available)",
            reason="NO_GPUS",
            metadata={"node": node},
        )
    for _attempt in range(_LEASE_ATTEMPTS):
        try:
            with sessions.begin() as session:
                row = _new_row(sandbox_id, request, settings, backend_name)
                store.insert_sandbox(session, row, request.labels)
                queued = False
                # A scheduler-placed backend's GPUs are the scheduler's to allocate.
                if (
                    request.gpu_count
                    and not registry.provider(backend_name).capabilities.scheduler_placed
                ):
                    chosen = leases.choose(
                        node,
                        leasable,
                        unhealthy,
                        set(leases.holders(session, node)),
                        count=request.gpu_count,
                        wanted=request.gpu_uuids,
                    )
                    if chosen is None:
                        if not request.wait_for_gpus:
                            free = len(set(leasable) - set(leases.holders(session, node)))
                            raise leases.gpus_busy(node, request.gpu_count, free)
                        queued = True
                    else:
                        leases.lease(session, node, sandbox_id, chosen)
                record = store.to_record(session, row)
            return record, True, queued
        except leases.LeaseConflict:
            continue
        except IntegrityError:
            # Another create with the same idempotency key won the race.
            existing = same_as_before(sessions, request)
            if existing is None:
                raise
            return existing, False, False
    raise leases.gpus_busy(node, request.gpu_count, 0)
