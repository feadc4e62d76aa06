"""A sandbox's states, the transitions between them, and why a sandbox did not succeed."""

from __future__ import annotations

import enum


class SandboxState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {SandboxState.SUCCEEDED, SandboxState.FAILED, SandboxState.TIMED_OUT, SandboxState.CANCELLED}
)
# The states of a sandbox that still holds (or waits for) resources.
ACTIVE = (SandboxState.PENDING, SandboxState.RUNNING)

_TRANSITIONS: dict[SandboxState, frozenset[SandboxState]] = {
    SandboxState.PENDING: frozenset(
        {SandboxState.RUNNING, SandboxState.FAILED, SandboxState.CANCELLED}
    ),
    SandboxState.RUNNING: TERMINAL_STATES,
}


def predecessors(target: SandboxState) -> frozenset[SandboxState]:
    """The states a sandbox may be in for a move to `target`."""
    return frozenset(s for s, nexts in _TRANSITIONS.items() if target in nexts)


class FailureClass(enum.StrEnum):
    AGENT = "AGENT"
    INFRASTRUCTURE = "INFRASTRUCTURE"


class FailureReason(enum.StrEnum):
    # The agent's fault.
    NONZERO_EXIT = "NONZERO_EXIT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    IMAGE_UNSUPPORTED = "IMAGE_UNSUPPORTED"
    DISK_QUOTA_EXCEEDED = "DISK_QUOTA_EXCEEDED"
    # Ours (or the engine's): worth a retry.
    ENGINE_ERROR = "ENGINE_ERROR"
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    GPU_UNAVAILABLE = "GPU_UNAVAILABLE"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    LOST = "LOST"
    REGISTRY_ERROR = "REGISTRY_ERROR"

    @property
    def failure_class(self) -> FailureClass:
        if self in _AGENT_REASONS:
            return FailureClass.AGENT
        return FailureClass.INFRASTRUCTURE


_AGENT_REASONS = frozenset(
    {
        FailureReason.NONZERO_EXIT,
        FailureReason.OUT_OF_MEMORY,
        FailureReason.IMAGE_UNSUPPORTED,
        FailureReason.DISK_QUOTA_EXCEEDED,
    }
)


def backend_failure_reason(reason: str) -> FailureReason:
    """A BackendError's reason as a FailureReason; unknown ones are engine errors. Of the
    agent's failures a backend may name only an unsupported image: exits and OOM kills are
    read from the container, never claimed by an error."""
    try:
        found = FailureReason(reason)
    except ValueError:
        return FailureReason.ENGINE_ERROR
    if (
        found.failure_class is FailureClass.INFRASTRUCTURE
        or found is FailureReason.IMAGE_UNSUPPORTED
    ):
        return found
    return FailureReason.ENGINE_ERROR
