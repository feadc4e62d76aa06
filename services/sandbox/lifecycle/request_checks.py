"""CreateSandbox's checks on values: finite, bounded numbers, the operator's budgets for
command and env, valid image references and allowlist hosts.

An agent's or lab's mistake must be refused here, as INVALID_ARGUMENT naming the field, and
never reach the engine to come back as an infrastructure failure that `mleb run` retries.
Bounds an operator may change are MLEB_SANDBOX_* variables (see RequestLimits.from_env);
docs/limits.md lists every one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import InvalidArgumentError, invalid_field, shown
from services.sandbox.lifecycle.image_reference import InvalidReference, parse_image_reference
from services.sandbox.node.egress_proxy import parse_allowlist
from services.sandbox.records import SandboxRequest

MIB = 1024**2
TIB = 1024**4
# The kernel's PID_MAX_LIMIT: pids.max accepts nothing larger.
PID_MAX_LIMIT = 1 << 22


def _default_max_cpus() -> float:
    return float(os.cpu_count() or 1)


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on CreateSandbox values; each is MLEB_SANDBOX_<NAME upper-cased>."""

    # Docker refuses more CPUs than the host has, so the default is this host's count.
    max_cpus: float = field(default_factory=_default_max_cpus)
    min_cpus: float = 0.01
    # Docker's own minimum is 6 MiB; below 16 MiB nothing starts.
    min_memory_bytes: int = 16 * MIB
    max_memory_bytes: int = 4 * TIB
    max_shm_bytes: int = 1 * TIB
    max_pids_limit: int = PID_MAX_LIMIT
    max_gpu_count: int = 64
    # Strings and lists (see docs/limits.md).
    max_command_args: int = 4096
    max_command_bytes: int = 1 * MIB
    max_env_vars: int = 1024
    max_env_bytes: int = 1 * MIB
    max_allowed_hosts: int = 256

    @classmethod
    def from_env(cls) -> RequestLimits:
        defaults = cls()
        # Each field's own type (float or int) is kept below, which a dict cannot say.
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = os.environ.get(f"MLEB_SANDBOX_{name.upper()}")
            if raw is None or not raw.strip():
                continue
            default = getattr(defaults, name)
            try:
                number = float(raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number) or number <= 0:
                raise invalid_field(f"MLEB_SANDBOX_{name.upper()}", "not a positive number")
            values[name] = int(number) if isinstance(default, int) else number
        return cls(**values)


def _check_number(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not math.isfinite(value):
        raise invalid_field(name, "must be a finite number")
    # 0 means the service default.
    if value and not low <= value <= high:
        raise invalid_field(name, f"must be 0 (the default) or between {low:g} and {high:g}{unit}")


def _check_env(source: str, env: Mapping[str, str], limits: RequestLimits) -> int:
    if len(env) > limits.max_env_vars:
        raise invalid_field(source, f"more than {limits.max_env_vars} variables")
    return sum(len(name.encode()) + len(value.encode()) for name, value in env.items())


def check_create_request(request: SandboxRequest, limits: RequestLimits) -> None:
    """Raises InvalidArgumentError naming the first bad field of a create request.

    Each string's length and NUL are checked at the door (services.common.field_limits);
    these are the checks of meaning, and the budgets an operator sets.
    """
    if request.image:
        try:
            parse_image_reference(request.image)
        except InvalidReference as exc:
            description = f"{shown(request.image)} is not an image reference: {exc}"
            raise invalid_field("image", description) from None
    if any(not c.isprintable() for c in request.idempotency_key):
        raise invalid_field("idempotency_key", "contains control characters")

    if len(request.command) > limits.max_command_args:
        raise invalid_field("command", f"more than {limits.max_command_args} entries")
    if sum(len(a.encode()) for a in request.command) > limits.max_command_bytes:
        raise invalid_field("command", f"longer than {limits.max_command_bytes} bytes in all")
    total = _check_env("env", request.env, limits)
    total += _check_env("secret_env", request.secret_env, limits)
    if total > limits.max_env_bytes:
        raise invalid_field("env", f"env and secret_env exceed {limits.max_env_bytes} bytes")
    if len(request.allowed_hosts) > limits.max_allowed_hosts:
        raise invalid_field(
            "network.allowed_hosts", f"more than {limits.max_allowed_hosts} entries"
        )
    try:
        parse_allowlist(list(request.allowed_hosts))
    except InvalidArgumentError as exc:
        violation = exc.violations[0]
        raise invalid_field(f"network.{violation.field}", violation.description) from None

    _check_number("resources.cpus", request.cpus, limits.min_cpus, limits.max_cpus, " CPUs")
    _check_number(
        "resources.memory_bytes",
        request.memory_bytes,
        limits.min_memory_bytes,
        limits.max_memory_bytes,
        " bytes",
    )
    _check_number("resources.shm_bytes", request.shm_bytes, 1, limits.max_shm_bytes, " bytes")
    _check_number("resources.pids_limit", request.pids_limit, 1, limits.max_pids_limit)
    _check_number("resources.gpu_count", request.gpu_count, 1, limits.max_gpu_count)
    if not math.isfinite(request.time_limit_s):
        raise invalid_field("time_limit", "must be a finite number")
