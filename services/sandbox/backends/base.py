"""What the sandbox core needs from an engine that runs agents.

The core owns state (database), policy (time limits, leases, retries) and the host-side
endpoints; a backend only starts, watches, stops, collects and lists what it started.
Every backend call is async; blocking engine clients run in threads.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from services.common.errors import FailedPreconditionError

if TYPE_CHECKING:
    from services.sandbox.config import SandboxSettings
    from services.sandbox.node.egress_proxy import EgressSums
    from services.sandbox.records import SandboxRequest

# Paths inside the sandbox (MLE-bench's layout, so existing agents work).
DATA_DIR = "/home/data"
SUBMISSION_DIR = "/home/submission"
LOGS_DIR = "/home/logs"
CODE_DIR = "/home/code"
AGENT_DIR = "/home/agent"
INSTRUCTIONS_FILE = "/home/instructions.txt"
VALIDATE_SCRIPT = "/home/validate_submission.sh"

# Ports the agent reaches on its own loopback.
HTTP_VALIDATE_PORT = 5000
GRPC_GRADER_PORT = 50052
EGRESS_PROXY_PORT = 3128


class NetworkMode(enum.StrEnum):
    NONE = "none"
    ALLOWLIST = "allowlist"
    INTERNET = "internet"


class OutputStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True)
class HostLayout:
    """Host paths prepared by the core for one sandbox before launch.

    - public_dir: when set, the node's sealed, shared cache entry of the public data, mounted
      read-only at /home/data with description_file mounted over its description.md (a
      placeholder made at seal time); data_dir is then not made
    - data_dir: otherwise, this sandbox's own links to the public files plus description.md
    - submission_dir, logs_dir, code_dir: mounted read-write at /home/submission, ...
    - instructions_file, validate_script: mounted read-only at /home/instructions.txt, ...
    - sockets_dir: host-side Unix sockets the sidecar forwards loopback ports to:
      `validate-http.sock` (port 5000), `grader.sock` (port 50052) and, in allowlist
      mode, `egress-proxy.sock` (port 3128)
    """

    root: Path
    data_dir: Path
    submission_dir: Path
    logs_dir: Path
    code_dir: Path
    instructions_file: Path
    validate_script: Path
    sockets_dir: Path
    description_file: Path
    public_dir: Path | None = None

    @property
    def data_source(self) -> Path:
        """What /home/data shows: the shared cache entry, or this sandbox's own folder."""
        return self.public_dir or self.data_dir


@dataclass(frozen=True)
class LaunchSpec:
    sandbox_id: str
    competition_id: str
    image: str
    # Empty means the image's own command (or start.sh in mlebench_compat mode).
    command: list[str]
    # Plain and secret variables together: a backend must never log or persist this.
    env: dict[str, str]
    cpus: float
    memory_bytes: int
    shm_bytes: int
    pids_limit: int
    # The GPUs the service leased (GpuAllocation.SERVICE_NVML); empty where a scheduler
    # allocates them, which it does from gpu_count.
    gpu_uuids: list[str]
    network: NetworkMode
    allowed_hosts: list[str]
    layout: HostLayout
    mlebench_compat: bool
    # Labels the backend must put on everything it creates, so reconcile can find it.
    labels: dict[str, str] = field(default_factory=dict)
    # The service enforces the limit itself; a backend may also use it (local: RLIMIT_CPU).
    time_limit_s: float = 0.0
    # Size of the agent's /tmp tmpfs, inside memory_bytes; 0 means half of memory_bytes.
    tmp_bytes: int = 0
    gpu_count: int = 0
    # Host device files handed to the agent as they are, for a node whose GPUs no NVIDIA
    # runtime hands out (the development cluster's stand-ins; services.sandbox.node.runner).
    gpu_devices: list[str] = field(default_factory=list)
    # How long a stop waits before it kills (the service's MLEB_SANDBOX_STOP_GRACE_S), for
    # backends whose stop is carried out away from the service.
    stop_grace_s: float = 10.0
    # The digest of the public files' listing the layout was prepared from, for a backend
    # whose node fetches them itself and must check it got the same files.
    listing_digest: str = ""


@dataclass(frozen=True)
class Handle:
    """A running (or finished) agent as the backend knows it."""

    sandbox_id: str
    # Container id, process id for the local backend, job id for a scheduler's.
    ref: str
    image_digest: str = ""
    # The GPUs a scheduler allocated, as the node names them; known once the agent started.
    gpus: tuple[str, ...] = ()
    # Where a scheduler placed it; empty for a backend that runs agents on the service's node.
    placement: str = ""
    # When a scheduler-placed agent started (unix seconds); 0 where launch is the start.
    started_at: float = 0.0


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int
    oom_killed: bool = False


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0


@dataclass(frozen=True)
class OutputLine:
    stream: OutputStream
    text: str
    # Engine timestamp (unix seconds); lets a re-attached reader skip what it already has.
    time: float


class BackendError(Exception):
    """The engine failed: an infrastructure failure, never the agent's."""

    def __init__(self, message: str, *, reason: str = "ENGINE_ERROR") -> None:
        super().__init__(message)
        # One of ENGINE_ERROR, IMAGE_NOT_FOUND, GPU_UNAVAILABLE, RUNTIME_ERROR.
        self.reason = reason


class GpuAllocation(enum.StrEnum):
    # The service leases this host's GPUs itself, through NVML and the database.
    SERVICE_NVML = "service_nvml"
    # The cluster's scheduler allocates them (Slurm GRES, Kubernetes nvidia.com/gpu).
    SCHEDULER = "scheduler"


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares about itself; the core asks these, never the backend's name."""

    # True: the agent is an image (LaunchSpec.image required) whose container has a writable
    # layer the engine measures. False: it is a command run on the host, which needs one.
    needs_image: bool
    # Whether an agent inside it is contained (users, namespaces, network) from the host.
    security_boundary: bool
    # True when the backend mounts the shared cache entry (HostLayout.public_dir) read-only
    # itself; False makes the core link the public files into each sandbox's data_dir.
    mounts_public_cache: bool
    gpu_allocation: GpuAllocation
    # Whether HostLayout's folders are the agent's own (so outputs are read on this host).
    outputs_on_host: bool
    # True: the backend serves the sandbox's endpoints (validation, grader, egress proxy) on
    # the agent's node itself, from the token in its environment, and reports the egress log
    # (node_egress); the service then opens none. False: the service serves them on its host
    # in HostLayout.sockets_dir.
    endpoints_on_node: bool = False

    @property
    def scheduler_placed(self) -> bool:
        """A cluster's scheduler places the agent (and its GPUs), and may queue it first."""
        return self.gpu_allocation is GpuAllocation.SCHEDULER


class Backend(Protocol):
    # The name it is registered under (services.sandbox.backends.registry).
    name: str
    capabilities: Capabilities

    async def admit(self, request: SandboxRequest) -> None:
        """Refuses, with a clear MlebError, a create request the backend could never run
        (a scheduler with no node that holds it); called before the sandbox is recorded."""
        ...

    async def launch(self, spec: LaunchSpec) -> Handle:
        """Creates and starts the agent, or submits it to a scheduler that starts it later.
        Raises BackendError on infrastructure failure."""
        ...

    async def started(self, handle: Handle) -> Handle:
        """Waits while a scheduler queues the agent, and returns its handle once it runs,
        with what became known then (its image digest, GPUs and placement). Raises
        BackendError when it ended, or was lost, before it ran."""
        ...

    def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        """Yields output lines from `since` (engine time) until the agent exits."""
        ...

    async def wait(self, handle: Handle) -> ExitInfo: ...

    async def stop(self, handle: Handle, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after grace_s. Idempotent."""
        ...

    async def usage(self, handle: Handle) -> Usage: ...

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        """What the agent wrote outside its mounts (the container's writable layer), as the
        engine measures it; None where the backend has no such layer to measure."""
        ...

    async def remove(self, handle: Handle) -> None:
        """Removes the container and anything else launched for it. Idempotent."""
        ...

    async def node_egress(self, handle: Handle) -> EgressSums | None:
        """The egress log of an ended agent whose endpoints the backend served on its node
        (Capabilities.endpoints_on_node); None where the service served them."""
        ...

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        """Everything this service instance started, with whether it is still running."""
        ...


class OnServiceHost:
    """For a backend that runs agents on the service's own host: its launch returns a
    running agent (nothing queues it), and the service serves the agent's endpoints."""

    async def admit(self, request: SandboxRequest) -> None:
        return None

    async def started(self, handle: Handle) -> Handle:
        return handle

    async def node_egress(self, handle: Handle) -> EgressSums | None:
        return None


@dataclass(frozen=True)
class BackendProvider:
    """A backend as the registry knows it (services.sandbox.backends.registry)."""

    name: str
    capabilities: Capabilities
    # Builds the backend from the service's settings; raises BackendUnavailable when its
    # engine does not answer.
    build: Callable[[SandboxSettings], Backend]


class BackendUnavailable(FailedPreconditionError):
    """The backend's engine does not answer (MLEB_SANDBOX_BACKEND=auto tries the next one)."""
