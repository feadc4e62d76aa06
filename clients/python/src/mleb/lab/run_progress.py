"""Where each run of a group stands, and which runs a resume must run again; read by the
driver, by grading and by `mleb run`'s live display."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from mleb.lab.records import Attempt, FailureType, RunRecord, RunState
from mleb.sandbox.v1 import sandbox_pb2

# Errors worth waiting out: the service restarts, or is briefly overloaded.
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}
)
# A sandbox in these states is still going: followed, stopped on cancel.
ACTIVE_STATES = (sandbox_pb2.SANDBOX_STATE_PENDING, sandbox_pb2.SANDBOX_STATE_RUNNING)


def is_settled(record: RunRecord) -> bool:
    """Finished for good: a resume skips it. Cancelled and infrastructure-failed runs run
    again when the group is resumed."""
    if record.state in (RunState.SUCCEEDED, RunState.TIMED_OUT):
        return True
    return record.state is RunState.FAILED and record.failure_type is not FailureType.INFRASTRUCTURE


def retryable(attempt: Attempt) -> bool:
    return attempt.state is RunState.FAILED and attempt.failure_type is FailureType.INFRASTRUCTURE


# Progress.


@dataclass
class RunProgress:
    """One run as `mleb run` shows it."""

    run_id: str
    competition_id: str
    seed: int
    state: RunState
    attempt: int = 0
    sandbox_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    latest_line: str = ""
    note: str = ""

    def elapsed_s(self, now: datetime | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or now or datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds())


@dataclass(frozen=True)
class GroupResult:
    group_dir: Path
    report_path: Path | None
    records: dict[str, RunRecord]
    cancelled: bool
    # Every run had finished and the newest report graded them all: nothing was done.
    already_graded: bool = False


def trailing_failures(attempts: Iterable[Attempt]) -> int:
    count = 0
    for attempt in reversed(list(attempts)):
        if not retryable(attempt):
            break
        count += 1
    return count
