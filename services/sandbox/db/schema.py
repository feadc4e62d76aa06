"""The sandbox service's tables. Every name starts with sandbox_ so services can share a database.

Secret environment values have no column anywhere: only their names are stored.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SandboxRow(Base):
    __tablename__ = "sandbox_sandboxes"
    # Idempotency keys are the tenant's own: another lab's key neither collides nor leaks.
    __table_args__ = (
        UniqueConstraint(
            "tenant", "idempotency_key", name="uq_sandbox_sandboxes_tenant_idempotency_key"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    competition_id: Mapped[str] = mapped_column(String(128), index=True)
    image: Mapped[str] = mapped_column(String(512))
    image_digest: Mapped[str] = mapped_column(String(256))
    command: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    secret_env_names: Mapped[list[str]] = mapped_column(JSON)
    cpus: Mapped[float] = mapped_column(Double)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    shm_bytes: Mapped[int] = mapped_column(BigInteger)
    pids_limit: Mapped[int] = mapped_column(BigInteger)
    gpu_count: Mapped[int] = mapped_column(Integer)
    requested_gpu_uuids: Mapped[list[str]] = mapped_column(JSON)
    # The GPUs the run was granted; kept after its lease rows are released, for the record.
    granted_gpu_uuids: Mapped[list[str]] = mapped_column(JSON, default=list)
    time_limit_s: Mapped[float] = mapped_column(Double)
    network_mode: Mapped[str] = mapped_column(String(16))
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON)
    # "PLAIN" or "OBFUSCATED": what the agent was shown.
    description_variant: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(256), index=True)
    # The lab that created it (its token's tenant); set by the service, never by the request.
    tenant: Mapped[str] = mapped_column(String(256), index=True, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    wait_for_gpus: Mapped[bool]
    mlebench_compat: Mapped[bool]
    backend: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    failure_class: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str] = mapped_column(String(32))
    failure_message: Mapped[str] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Written before the backend is asked to launch, so a restart knows a launch may exist.
    launch_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # started_at + time limit: a restarted service re-arms the limit from here.
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A stop intent: the terminal state it leads to (CANCELLED or TIMED_OUT) and its grace.
    stop_target: Mapped[str] = mapped_column(String(16))
    stop_reason: Mapped[str] = mapped_column(Text)
    stop_grace_s: Mapped[float] = mapped_column(Double)
    node: Mapped[str] = mapped_column(String(256), index=True)
    instance_id: Mapped[str] = mapped_column(String(64))
    # Container id or process id.
    backend_ref: Mapped[str] = mapped_column(String(128))
    cpu_seconds: Mapped[float] = mapped_column(Double)
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpu_utilization_percent: Mapped[float] = mapped_column(Double)
    peak_gpu_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    artifacts_size_bytes: Mapped[int] = mapped_column(BigInteger)
    submission_collected: Mapped[bool]
    last_log_seq: Mapped[int] = mapped_column(BigInteger)
    # Engine time of the last stored agent line; log capture resumes after it.
    last_output_time: Mapped[float] = mapped_column(Double)
    # Host folder holding data/, submission/, logs/, code/ (and sockets) for this sandbox.
    layout_root: Mapped[str] = mapped_column(String(1024))
    artifacts_deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Egress connections not itemised in sandbox_egress once its per-sandbox cap was reached.
    egress_omitted_connections: Mapped[int] = mapped_column(BigInteger, default=0)
    # Quotas (0 in rows from before they existed: the service defaults then apply).
    disk_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    tmp_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # A DiskEnforcement name, recorded at launch.
    disk_enforcement: Mapped[str] = mapped_column(String(40), default="")
    peak_disk_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # The seq of its "created" record in the audit chain; the attestation covers from there.
    audit_first_seq: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    # The signed DSSE envelope (JSON), written with the terminal state.
    attestation: Mapped[str] = mapped_column(Text, server_default="", default="")
    attestation_error: Mapped[str] = mapped_column(String(512), server_default="", default="")
    # Agent output charged against log_bytes, and agent lines dropped once it was spent.
    agent_log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_lines_dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    # The failure reason a FAILED stop intent ends with (DISK_QUOTA_EXCEEDED).
    stop_failure_reason: Mapped[str] = mapped_column(String(32), default="")


class LabelRow(Base):
    __tablename__ = "sandbox_labels"
    __table_args__ = (Index("ix_sandbox_labels_key_value", "key", "value"),)

    sandbox_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_sandboxes.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class LogEntryRow(Base):
    __tablename__ = "sandbox_log_entries"

    sandbox_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_sandboxes.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Unix seconds: the engine's time for agent output, the service's for SYSTEM lines.
    time: Mapped[float] = mapped_column(Double)
    # "stdout", "stderr" or "system".
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)


class GpuLeaseRow(Base):
    """One GPU held by one sandbox. The primary key is what makes a lease exclusive."""

    __tablename__ = "sandbox_gpu_leases"

    node: Mapped[str] = mapped_column(String(256), primary_key=True)
    gpu_uuid: Mapped[str] = mapped_column(String(128), primary_key=True)
    sandbox_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_sandboxes.id", ondelete="CASCADE"), index=True
    )
    leased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EgressRow(Base):
    """Connections from one sandbox to one destination with one verdict, summed."""

    __tablename__ = "sandbox_egress"

    sandbox_id: Mapped[str] = mapped_column(
        ForeignKey("sandbox_sandboxes.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(512))
    port: Mapped[int] = mapped_column(Integer)
    # The checked address connected to; "" when none was.
    address: Mapped[str] = mapped_column(String(64))
    # An EgressVerdict name: ALLOWED, NOT_ALLOWLISTED, FORBIDDEN_ADDRESS, BAD_HOST, UNREACHABLE.
    verdict: Mapped[str] = mapped_column(String(24))
    connections: Mapped[int] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger)
    bytes_received: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
