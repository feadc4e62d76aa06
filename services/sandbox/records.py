"""Plain values the sandbox core takes and returns (no ORM, no proto)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from services.sandbox.backends.base import NetworkMode
from services.sandbox.gpus.inventory import GpuInfo
from services.sandbox.lifecycle.states import FailureClass, FailureReason, SandboxState
from services.sandbox.node.egress_proxy import EgressVerdict


class DescriptionVariant(enum.StrEnum):
    PLAIN = "PLAIN"
    OBFUSCATED = "OBFUSCATED"


class LogStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"


@dataclass(frozen=True)
class SandboxRequest:
    """What a caller asks for. Zero resource values mean the service default."""

    competition_id: str
    image: str
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # Handed to the backend only; never stored, logged or returned.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    cpus: float = 0.0
    memory_bytes: int = 0
    shm_bytes: int = 0
    pids_limit: int = 0
    gpu_count: int = 0
    gpu_uuids: list[str] = field(default_factory=list)
    disk_bytes: int = 0
    tmp_bytes: int = 0
    log_bytes: int = 0
    time_limit_s: float = 0.0
    network: NetworkMode = NetworkMode.NONE
    allowed_hosts: list[str] = field(default_factory=list)
    description_variant: DescriptionVariant = DescriptionVariant.PLAIN
    labels: dict[str, str] = field(default_factory=dict)
    owner: str = ""
    idempotency_key: str = ""
    wait_for_gpus: bool = False
    mlebench_compat: bool = False
    # Set by the service from the caller's token, never from the request message.
    tenant: str = ""


@dataclass(frozen=True)
class EgressDestination:
    """The egress proxy's connections to one destination with one verdict, summed."""

    host: str
    port: int
    address: str
    verdict: EgressVerdict
    connections: int
    bytes_sent: int
    bytes_received: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class ResourceUsage:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    gpu_utilization_percent: float = 0.0
    peak_gpu_memory_bytes: int = 0
    artifacts_size_bytes: int = 0
    peak_disk_bytes: int = 0
    log_bytes: int = 0
    log_lines_dropped: int = 0


@dataclass(frozen=True)
class SandboxRecord:
    id: str
    competition_id: str
    image: str
    image_digest: str
    command: list[str]
    env: dict[str, str]
    secret_env_names: list[str]
    cpus: float
    memory_bytes: int
    shm_bytes: int
    pids_limit: int
    gpu_count: int
    requested_gpu_uuids: list[str]
    time_limit_s: float
    network: NetworkMode
    allowed_hosts: list[str]
    description_variant: DescriptionVariant
    labels: dict[str, str]
    owner: str
    idempotency_key: str
    wait_for_gpus: bool
    mlebench_compat: bool
    backend: str
    state: SandboxState
    failure_class: FailureClass | None
    failure_reason: FailureReason | None
    failure_message: str
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    # The GPUs the run was granted, kept for good; held_gpu_uuids empties when they go back.
    leased_gpu_uuids: list[str]
    held_gpu_uuids: list[str]
    usage: ResourceUsage
    node: str
    submission_collected: bool
    last_log_seq: int
    layout_root: str
    artifacts_deleted: bool
    tenant: str = ""
    egress: list[EgressDestination] = field(default_factory=list)
    egress_omitted_connections: int = 0
    disk_bytes: int = 0
    tmp_bytes: int = 0
    log_bytes: int = 0
    # A DiskEnforcement name (quotas.py), or "" before the sandbox was launched.
    disk_enforcement: str = ""
    attestation: str = ""
    attestation_error: str = ""


@dataclass(frozen=True)
class SandboxFilter:
    labels: dict[str, str] = field(default_factory=dict)
    states: list[SandboxState] = field(default_factory=list)
    owner: str = ""
    competition_id: str = ""
    # Only this tenant's sandboxes; None for every tenant's (the service role).
    tenant: str | None = None


@dataclass(frozen=True)
class SandboxPage:
    sandboxes: list[SandboxRecord]
    next_page_token: str


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: float
    stream: LogStream
    text: str


@dataclass(frozen=True)
class GpuListing:
    """The node's NVML inventory, with the sandbox leasing each GPU (by UUID)."""

    node: str
    nvml_available: bool
    driver_version: str
    gpus: list[GpuInfo]
    leased_by: dict[str, str]


@dataclass(frozen=True)
class PublicFile:
    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Competition:
    """What the sandbox needs to know about a competition from the registry."""

    id: str
    prepared: bool
    data_status_reason: str
    # In the variant that was asked for.
    description: str
    # mleb.public_listing's digest of the public files, and their number; the listing
    # itself is fetched only by a node that does not hold the data yet.
    listing_digest: str
    file_count: int = 0
    # The grading bundle's content address, which attestations name.
    bundle_digest: str = ""
