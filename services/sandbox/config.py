"""The sandbox service's own settings (MLEB_SANDBOX_* variables), next to the shared Settings."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from services.common.errors import invalid_field
from services.common.settings import Settings
from services.sandbox.lifecycle.request_checks import RequestLimits
from services.storage.config import StoreSettings

MIB = 1024**2
GIB = 1024**3


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MLEB_SANDBOX_{name}", default)


def _float_setting(variable: str, default: float) -> float:
    raw = os.environ.get(variable, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise invalid_field(variable, f"not a number: {raw!r}") from exc


def _float(name: str, default: float) -> float:
    return _float_setting(f"MLEB_SANDBOX_{name}", default)


def seconds_setting(variable: str, default: float, *, positive: bool = False) -> float:
    """A number of seconds from the environment variable: finite and not negative, or, with
    `positive`, above zero (an interval a loop sleeps, which zero would make spin)."""
    value = _float_setting(variable, default)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a"
        raw = os.environ.get(variable, str(default))
        raise invalid_field(variable, f"not {kind} number of seconds: {raw!r}")
    return value


# More simulated GPUs than any real node has is a typo, not a test.
MAX_SIMULATED_GPUS = 64


def _simulated_gpus() -> int:
    name = "MLEB_SANDBOX_SIMULATED_GPUS"
    raw = _env("SIMULATED_GPUS", "0").strip() or "0"
    if not raw.isdigit() or int(raw) > MAX_SIMULATED_GPUS:
        raise invalid_field(name, f"a whole number from 0 to {MAX_SIMULATED_GPUS}, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class SandboxSettings:
    # Where sandboxes' host folders and the public-data cache live.
    work_dir: Path
    # "docker", "local" or "auto" (docker when an engine answers).
    backend: str = "auto"
    # Leases and reconcile are per node; two services on one node must share a node name.
    node: str = field(default_factory=socket.gethostname)
    # Labels containers so reconcile only touches what this service instance started.
    instance_id: str = "default"
    default_time_limit_s: float = 24 * 3600.0
    max_time_limit_s: float = 7 * 24 * 3600.0
    default_cpus: float = 2.0
    default_memory_bytes: int = 8 * GIB
    default_shm_bytes: int = 1 * GIB
    default_pids_limit: int = 1024
    # Disk quota for the output folders and the writable layer together (see quotas.py).
    default_disk_bytes: int = 50 * GIB
    max_disk_bytes: int = 1024 * GIB
    # Files and folders the output folders may hold; more is a disk quota failure too.
    max_output_entries: int = 1_000_000
    # How often the disk watchdog measures a running sandbox.
    disk_check_interval_s: float = 5.0
    # Agent output kept in the database per sandbox (see logs.py for how lines are charged).
    default_log_bytes: int = 64 * MIB
    max_log_bytes: int = 1 * GIB
    stop_grace_s: float = 10.0
    # The sandbox token outlives the time limit by this much, so a late validation still works.
    token_margin_s: float = 600.0
    max_artifacts_bytes: int = 10 * GIB
    # Terminal sandboxes' host folders are deleted after this long; 0 keeps them.
    artifacts_retention_s: float = 0.0
    log_batch_lines: int = 500
    log_flush_interval_s: float = 0.2
    # How often CPU, memory and GPU usage are sampled while an agent runs.
    sample_interval_s: float = 2.0
    # The Docker backend's network sidecar image; empty for the backend's default.
    sidecar_image: str = ""
    # How often queued sandboxes look for free GPUs released by another process.
    queue_poll_interval_s: float = 2.0
    # How long a scheduler (Slurm) may keep a sandbox queued before it fails: its token,
    # minted at submission, must outlive the queue and the run.
    max_queue_s: float = 7 * 24 * 3600.0
    # Addresses or CIDR networks the allowlist proxy may reach although they are loopback,
    # private, link-local or the host's own (MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES, commas).
    egress_allow_addresses: tuple[str, ...] = ()
    # Destinations itemised in a sandbox's egress log; later ones are only counted.
    egress_max_destinations: int = 256
    # Bounds on CreateSandbox's values (MLEB_SANDBOX_MAX_CPUS and others; docs/limits.md).
    request_limits: RequestLimits = field(default_factory=RequestLimits)
    # The node's public-data cache is trimmed to this many bytes, least recently used first,
    # never removing data a pending or running sandbox uses; 0 means no limit
    # (MLEB_SANDBOX_CACHE_MAX_BYTES; docs/sandbox.md).
    cache_max_bytes: int = 100 * GIB
    # Development and testing without GPUs: this many simulated devices instead of NVML's
    # (MLEB_SANDBOX_SIMULATED_GPUS; never on by default; docs/gpus.md).
    simulated_gpus: int = 0
    # Where finished sandboxes' artifact archives are kept for any instance to serve
    # (MLEB_OBJECT_STORE; services/storage/config.py); None builds them on demand from the
    # host folder, as on a single machine.
    object_store: StoreSettings | None = None

    @classmethod
    def from_env(cls, settings: Settings) -> SandboxSettings:
        return cls(
            work_dir=Path(_env("WORK_DIR", str(settings.data_dir / "sandboxes"))),
            backend=_env("BACKEND", "auto").strip().lower(),
            node=_env("NODE", socket.gethostname()),
            instance_id=_env("INSTANCE_ID", "default"),
            default_time_limit_s=_float("DEFAULT_TIME_LIMIT_S", 24 * 3600.0),
            max_time_limit_s=_float("MAX_TIME_LIMIT_S", 7 * 24 * 3600.0),
            default_cpus=_float("DEFAULT_CPUS", 2.0),
            default_memory_bytes=int(_float("DEFAULT_MEMORY_BYTES", 8 * GIB)),
            default_shm_bytes=int(_float("DEFAULT_SHM_BYTES", 1 * GIB)),
            default_pids_limit=int(_float("DEFAULT_PIDS_LIMIT", 1024)),
            default_disk_bytes=int(_float("DEFAULT_DISK_BYTES", 50 * GIB)),
            max_disk_bytes=int(_float("MAX_DISK_BYTES", 1024 * GIB)),
            max_output_entries=int(_float("MAX_OUTPUT_ENTRIES", 1_000_000)),
            disk_check_interval_s=seconds_setting(
                "MLEB_SANDBOX_DISK_CHECK_INTERVAL_S", 5.0, positive=True
            ),
            default_log_bytes=int(_float("DEFAULT_LOG_BYTES", 64 * MIB)),
            max_log_bytes=int(_float("MAX_LOG_BYTES", 1 * GIB)),
            stop_grace_s=_float("STOP_GRACE_S", 10.0),
            max_artifacts_bytes=int(_float("MAX_ARTIFACTS_BYTES", 10 * GIB)),
            artifacts_retention_s=_float("ARTIFACTS_RETENTION_S", 0.0),
            sample_interval_s=seconds_setting("MLEB_SANDBOX_SAMPLE_INTERVAL_S", 2.0, positive=True),
            queue_poll_interval_s=seconds_setting(
                "MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S", 2.0, positive=True
            ),
            max_queue_s=_float("MAX_QUEUE_S", 7 * 24 * 3600.0),
            sidecar_image=_env("SIDECAR_IMAGE", ""),
            egress_allow_addresses=tuple(
                filter(None, (a.strip() for a in _env("EGRESS_ALLOW_ADDRESSES", "").split(",")))
            ),
            egress_max_destinations=int(_float("EGRESS_MAX_DESTINATIONS", 256)),
            cache_max_bytes=int(_float("CACHE_MAX_BYTES", 100 * GIB)),
            request_limits=RequestLimits.from_env(),
            simulated_gpus=_simulated_gpus(),
            object_store=StoreSettings.from_env(),
        )
