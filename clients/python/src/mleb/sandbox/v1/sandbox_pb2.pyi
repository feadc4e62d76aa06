import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mleb.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SandboxState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_STATE_UNSPECIFIED: _ClassVar[SandboxState]
    SANDBOX_STATE_PENDING: _ClassVar[SandboxState]
    SANDBOX_STATE_RUNNING: _ClassVar[SandboxState]
    SANDBOX_STATE_SUCCEEDED: _ClassVar[SandboxState]
    SANDBOX_STATE_FAILED: _ClassVar[SandboxState]
    SANDBOX_STATE_TIMED_OUT: _ClassVar[SandboxState]
    SANDBOX_STATE_CANCELLED: _ClassVar[SandboxState]

class FailureClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_CLASS_UNSPECIFIED: _ClassVar[FailureClass]
    FAILURE_CLASS_AGENT: _ClassVar[FailureClass]
    FAILURE_CLASS_INFRASTRUCTURE: _ClassVar[FailureClass]

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_REASON_UNSPECIFIED: _ClassVar[FailureReason]
    FAILURE_REASON_NONZERO_EXIT: _ClassVar[FailureReason]
    FAILURE_REASON_OUT_OF_MEMORY: _ClassVar[FailureReason]
    FAILURE_REASON_IMAGE_UNSUPPORTED: _ClassVar[FailureReason]
    FAILURE_REASON_DISK_QUOTA_EXCEEDED: _ClassVar[FailureReason]
    FAILURE_REASON_ENGINE_ERROR: _ClassVar[FailureReason]
    FAILURE_REASON_IMAGE_NOT_FOUND: _ClassVar[FailureReason]
    FAILURE_REASON_GPU_UNAVAILABLE: _ClassVar[FailureReason]
    FAILURE_REASON_RUNTIME_ERROR: _ClassVar[FailureReason]
    FAILURE_REASON_LOST: _ClassVar[FailureReason]
    FAILURE_REASON_REGISTRY_ERROR: _ClassVar[FailureReason]

class NetworkMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_MODE_UNSPECIFIED: _ClassVar[NetworkMode]
    NETWORK_MODE_NONE: _ClassVar[NetworkMode]
    NETWORK_MODE_ALLOWLIST: _ClassVar[NetworkMode]
    NETWORK_MODE_INTERNET: _ClassVar[NetworkMode]

class DiskEnforcement(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_ENFORCEMENT_UNSPECIFIED: _ClassVar[DiskEnforcement]
    DISK_ENFORCEMENT_WATCHDOG: _ClassVar[DiskEnforcement]
    DISK_ENFORCEMENT_WATCHDOG_OUTPUTS_ONLY: _ClassVar[DiskEnforcement]

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_DOCKER: _ClassVar[Backend]
    BACKEND_LOCAL: _ClassVar[Backend]
    BACKEND_SLURM: _ClassVar[Backend]
    BACKEND_KUBERNETES: _ClassVar[Backend]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
    LOG_STREAM_SYSTEM: _ClassVar[LogStream]

class GpuHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GPU_HEALTH_UNSPECIFIED: _ClassVar[GpuHealth]
    GPU_HEALTH_HEALTHY: _ClassVar[GpuHealth]
    GPU_HEALTH_DEGRADED: _ClassVar[GpuHealth]
    GPU_HEALTH_UNHEALTHY: _ClassVar[GpuHealth]

class EgressVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EGRESS_VERDICT_UNSPECIFIED: _ClassVar[EgressVerdict]
    EGRESS_VERDICT_ALLOWED: _ClassVar[EgressVerdict]
    EGRESS_VERDICT_NOT_ALLOWLISTED: _ClassVar[EgressVerdict]
    EGRESS_VERDICT_FORBIDDEN_ADDRESS: _ClassVar[EgressVerdict]
    EGRESS_VERDICT_BAD_HOST: _ClassVar[EgressVerdict]
    EGRESS_VERDICT_UNREACHABLE: _ClassVar[EgressVerdict]
SANDBOX_STATE_UNSPECIFIED: SandboxState
SANDBOX_STATE_PENDING: SandboxState
SANDBOX_STATE_RUNNING: SandboxState
SANDBOX_STATE_SUCCEEDED: SandboxState
SANDBOX_STATE_FAILED: SandboxState
SANDBOX_STATE_TIMED_OUT: SandboxState
SANDBOX_STATE_CANCELLED: SandboxState
FAILURE_CLASS_UNSPECIFIED: FailureClass
FAILURE_CLASS_AGENT: FailureClass
FAILURE_CLASS_INFRASTRUCTURE: FailureClass
FAILURE_REASON_UNSPECIFIED: FailureReason
FAILURE_REASON_NONZERO_EXIT: FailureReason
FAILURE_REASON_OUT_OF_MEMORY: FailureReason
FAILURE_REASON_IMAGE_UNSUPPORTED: FailureReason
FAILURE_REASON_DISK_QUOTA_EXCEEDED: FailureReason
FAILURE_REASON_ENGINE_ERROR: FailureReason
FAILURE_REASON_IMAGE_NOT_FOUND: FailureReason
FAILURE_REASON_GPU_UNAVAILABLE: FailureReason
FAILURE_REASON_RUNTIME_ERROR: FailureReason
FAILURE_REASON_LOST: FailureReason
FAILURE_REASON_REGISTRY_ERROR: FailureReason
NETWORK_MODE_UNSPECIFIED: NetworkMode
NETWORK_MODE_NONE: NetworkMode
NETWORK_MODE_ALLOWLIST: NetworkMode
NETWORK_MODE_INTERNET: NetworkMode
DISK_ENFORCEMENT_UNSPECIFIED: DiskEnforcement
DISK_ENFORCEMENT_WATCHDOG: DiskEnforcement
DISK_ENFORCEMENT_WATCHDOG_OUTPUTS_ONLY: DiskEnforcement
BACKEND_UNSPECIFIED: Backend
BACKEND_DOCKER: Backend
BACKEND_LOCAL: Backend
BACKEND_SLURM: Backend
BACKEND_KUBERNETES: Backend
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream
LOG_STREAM_SYSTEM: LogStream
GPU_HEALTH_UNSPECIFIED: GpuHealth
GPU_HEALTH_HEALTHY: GpuHealth
GPU_HEALTH_DEGRADED: GpuHealth
GPU_HEALTH_UNHEALTHY: GpuHealth
EGRESS_VERDICT_UNSPECIFIED: EgressVerdict
EGRESS_VERDICT_ALLOWED: EgressVerdict
EGRESS_VERDICT_NOT_ALLOWLISTED: EgressVerdict
EGRESS_VERDICT_FORBIDDEN_ADDRESS: EgressVerdict
EGRESS_VERDICT_BAD_HOST: EgressVerdict
EGRESS_VERDICT_UNREACHABLE: EgressVerdict

class NetworkPolicy(_message.Message):
    __slots__ = ("mode", "allowed_hosts")
    MODE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_HOSTS_FIELD_NUMBER: _ClassVar[int]
    mode: NetworkMode
    allowed_hosts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mode: _Optional[_Union[NetworkMode, str]] = ..., allowed_hosts: _Optional[_Iterable[str]] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpus", "memory_bytes", "shm_bytes", "pids_limit", "gpu_count", "gpu_uuids", "disk_bytes", "tmp_bytes", "log_bytes")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHM_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    GPU_UUIDS_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    TMP_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_bytes: int
    shm_bytes: int
    pids_limit: int
    gpu_count: int
    gpu_uuids: _containers.RepeatedScalarFieldContainer[str]
    disk_bytes: int
    tmp_bytes: int
    log_bytes: int
    def __init__(self, cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., shm_bytes: _Optional[int] = ..., pids_limit: _Optional[int] = ..., gpu_count: _Optional[int] = ..., gpu_uuids: _Optional[_Iterable[str]] = ..., disk_bytes: _Optional[int] = ..., tmp_bytes: _Optional[int] = ..., log_bytes: _Optional[int] = ...) -> None: ...

class ResourceUsage(_message.Message):
    __slots__ = ("cpu_seconds", "peak_memory_bytes", "gpu_utilization_percent", "peak_gpu_memory_bytes", "artifacts_size_bytes", "peak_disk_bytes", "log_bytes", "log_lines_dropped")
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPU_UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PEAK_GPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PEAK_DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOG_LINES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    cpu_seconds: float
    peak_memory_bytes: int
    gpu_utilization_percent: float
    peak_gpu_memory_bytes: int
    artifacts_size_bytes: int
    peak_disk_bytes: int
    log_bytes: int
    log_lines_dropped: int
    def __init__(self, cpu_seconds: _Optional[float] = ..., peak_memory_bytes: _Optional[int] = ..., gpu_utilization_percent: _Optional[float] = ..., peak_gpu_memory_bytes: _Optional[int] = ..., artifacts_size_bytes: _Optional[int] = ..., peak_disk_bytes: _Optional[int] = ..., log_bytes: _Optional[int] = ..., log_lines_dropped: _Optional[int] = ...) -> None: ...

class Sandbox(_message.Message):
    __slots__ = ("id", "competition_id", "image", "image_digest", "command", "env", "secret_env_names", "resources", "time_limit", "network", "description_variant", "labels", "owner", "idempotency_key", "wait_for_gpus", "mlebench_compat", "backend", "state", "failure_class", "failure_reason", "failure_message", "exit_code", "created_at", "started_at", "finished_at", "leased_gpu_uuids", "usage", "node", "submission_collected", "last_log_seq", "tenant", "egress", "egress_omitted_connections", "disk_enforcement", "simulated_gpus", "attestation", "attestation_error", "backend_name")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    SECRET_ENV_NAMES_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TIME_LIMIT_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_VARIANT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_GPUS_FIELD_NUMBER: _ClassVar[int]
    MLEBENCH_COMPAT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASED_GPU_UUIDS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_COLLECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_SEQ_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    EGRESS_OMITTED_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    DISK_ENFORCEMENT_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_GPUS_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    BACKEND_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    competition_id: str
    image: str
    image_digest: str
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    secret_env_names: _containers.RepeatedScalarFieldContainer[str]
    resources: Resources
    time_limit: _duration_pb2.Duration
    network: NetworkPolicy
    description_variant: _common_pb2.DescriptionVariant
    labels: _containers.ScalarMap[str, str]
    owner: str
    idempotency_key: str
    wait_for_gpus: bool
    mlebench_compat: bool
    backend: Backend
    state: SandboxState
    failure_class: FailureClass
    failure_reason: FailureReason
    failure_message: str
    exit_code: int
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    leased_gpu_uuids: _containers.RepeatedScalarFieldContainer[str]
    usage: ResourceUsage
    node: str
    submission_collected: bool
    last_log_seq: int
    tenant: str
    egress: _containers.RepeatedCompositeFieldContainer[EgressDestination]
    egress_omitted_connections: int
    disk_enforcement: DiskEnforcement
    simulated_gpus: bool
    attestation: str
    attestation_error: str
    backend_name: str
    def __init__(self, id: _Optional[str] = ..., competition_id: _Optional[str] = ..., image: _Optional[str] = ..., image_digest: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., secret_env_names: _Optional[_Iterable[str]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., time_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., network: _Optional[_Union[NetworkPolicy, _Mapping]] = ..., description_variant: _Optional[_Union[_common_pb2.DescriptionVariant, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., owner: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., wait_for_gpus: _Optional[bool] = ..., mlebench_compat: _Optional[bool] = ..., backend: _Optional[_Union[Backend, str]] = ..., state: _Optional[_Union[SandboxState, str]] = ..., failure_class: _Optional[_Union[FailureClass, str]] = ..., failure_reason: _Optional[_Union[FailureReason, str]] = ..., failure_message: _Optional[str] = ..., exit_code: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., leased_gpu_uuids: _Optional[_Iterable[str]] = ..., usage: _Optional[_Union[ResourceUsage, _Mapping]] = ..., node: _Optional[str] = ..., submission_collected: _Optional[bool] = ..., last_log_seq: _Optional[int] = ..., tenant: _Optional[str] = ..., egress: _Optional[_Iterable[_Union[EgressDestination, _Mapping]]] = ..., egress_omitted_connections: _Optional[int] = ..., disk_enforcement: _Optional[_Union[DiskEnforcement, str]] = ..., simulated_gpus: _Optional[bool] = ..., attestation: _Optional[str] = ..., attestation_error: _Optional[str] = ..., backend_name: _Optional[str] = ...) -> None: ...

class EgressDestination(_message.Message):
    __slots__ = ("host", "port", "address", "verdict", "connections", "bytes_sent", "bytes_received", "first_at", "last_at")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    FIRST_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    address: str
    verdict: EgressVerdict
    connections: int
    bytes_sent: int
    bytes_received: int
    first_at: _timestamp_pb2.Timestamp
    last_at: _timestamp_pb2.Timestamp
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ..., address: _Optional[str] = ..., verdict: _Optional[_Union[EgressVerdict, str]] = ..., connections: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., first_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("seq", "time", "stream", "text")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    stream: LogStream
    text: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stream: _Optional[_Union[LogStream, str]] = ..., text: _Optional[str] = ...) -> None: ...

class MigDevice(_message.Message):
    __slots__ = ("uuid", "name", "memory_total_bytes")
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    name: str
    memory_total_bytes: int
    def __init__(self, uuid: _Optional[str] = ..., name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("index", "uuid", "name", "memory_total_bytes", "memory_used_bytes", "utilization_percent", "health", "health_notes", "uncorrected_ecc_errors", "retired_pages", "mig_enabled", "mig_devices", "leased_by", "simulated")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_NOTES_FIELD_NUMBER: _ClassVar[int]
    UNCORRECTED_ECC_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RETIRED_PAGES_FIELD_NUMBER: _ClassVar[int]
    MIG_ENABLED_FIELD_NUMBER: _ClassVar[int]
    MIG_DEVICES_FIELD_NUMBER: _ClassVar[int]
    LEASED_BY_FIELD_NUMBER: _ClassVar[int]
    SIMULATED_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    utilization_percent: int
    health: GpuHealth
    health_notes: _containers.RepeatedScalarFieldContainer[str]
    uncorrected_ecc_errors: int
    retired_pages: int
    mig_enabled: bool
    mig_devices: _containers.RepeatedCompositeFieldContainer[MigDevice]
    leased_by: str
    simulated: bool
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ..., name: _Optional[str] = ..., memory_total_bytes: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., utilization_percent: _Optional[int] = ..., health: _Optional[_Union[GpuHealth, str]] = ..., health_notes: _Optional[_Iterable[str]] = ..., uncorrected_ecc_errors: _Optional[int] = ..., retired_pages: _Optional[int] = ..., mig_enabled: _Optional[bool] = ..., mig_devices: _Optional[_Iterable[_Union[MigDevice, _Mapping]]] = ..., leased_by: _Optional[str] = ..., simulated: _Optional[bool] = ...) -> None: ...
