"""The sandbox state machine and the failure taxonomy."""

from __future__ import annotations

import pytest

from services.sandbox.lifecycle.states import (
    FailureClass,
    FailureReason,
    SandboxState,
    backend_failure_reason,
    predecessors,
)

S = SandboxState


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.RUNNING),
        (S.PENDING, S.FAILED),
        (S.PENDING, S.CANCELLED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.TIMED_OUT),
        (S.RUNNING, S.CANCELLED),
    ],
)
def test_allowed_transitions(current, target):
    # store.transition's conditional UPDATE allows exactly these predecessors.
    assert current in predecessors(target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.PENDING, S.SUCCEEDED),
        (S.PENDING, S.TIMED_OUT),
        (S.RUNNING, S.PENDING),
        (S.SUCCEEDED, S.FAILED),
        (S.CANCELLED, S.RUNNING),
        (S.FAILED, S.FAILED),
    ],
)
def test_refused_transitions(current, target):
    assert current not in predecessors(target)


def test_terminal_states_have_no_way_out():
    for state in S:
        if state.terminal:
            assert all(state not in predecessors(t) for t in S)
    assert predecessors(S.RUNNING) == {S.PENDING}
    assert predecessors(S.TIMED_OUT) == {S.RUNNING}


def test_agent_and_infrastructure_failures_are_apart():
    agent = {r for r in FailureReason if r.failure_class is FailureClass.AGENT}
    assert agent == {
        FailureReason.NONZERO_EXIT,
        FailureReason.OUT_OF_MEMORY,
        FailureReason.IMAGE_UNSUPPORTED,
        FailureReason.DISK_QUOTA_EXCEEDED,
    }
    for reason in ("ENGINE_ERROR", "IMAGE_NOT_FOUND", "GPU_UNAVAILABLE", "RUNTIME_ERROR"):
        assert backend_failure_reason(reason).failure_class is FailureClass.INFRASTRUCTURE
    # A backend can blame the agent only for its image; exits and OOM kills are read from
    # the container. Unknown reasons are engine errors.
    assert backend_failure_reason("IMAGE_UNSUPPORTED") is FailureReason.IMAGE_UNSUPPORTED
    assert backend_failure_reason("NONZERO_EXIT") is FailureReason.ENGINE_ERROR
    assert backend_failure_reason("OUT_OF_MEMORY") is FailureReason.ENGINE_ERROR
    assert backend_failure_reason("DISK_QUOTA_EXCEEDED") is FailureReason.ENGINE_ERROR
    assert backend_failure_reason("SOMETHING_NEW") is FailureReason.ENGINE_ERROR
