"""Exclusive GPU leases, stored in the database and keyed by (node, GPU UUID).

The primary key is the lock: two service processes sharing a database race on the INSERT,
and the loser's transaction fails and is retried with a fresh view. No Python lock is
needed for correctness, and leases outlive the process that took them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import (
    FailedPreconditionError,
    QuotaViolation,
    ResourceExhaustedError,
    invalid_field,
)
from services.sandbox.db.schema import GpuLeaseRow, SandboxRow


class LeaseConflict(Exception):
    """Another transaction took a GPU this one chose; the caller retries the transaction."""


def gpus_busy(node: str, wanted: int, free: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{wanted} GPU(s) requested but {free} free on node {node}",
        reason="GPUS_EXHAUSTED",
        metadata={"node": node, "requested": str(wanted), "free": str(free)},
        quota=[QuotaViolation(f"node:{node}/gpus", f"{free} free, {wanted} requested")],
    )


def holders(session: Session, node: str) -> dict[str, str]:
    """GPU UUID -> sandbox id, for every lease on the node."""
    rows = session.scalars(select(GpuLeaseRow).where(GpuLeaseRow.node == node))
    return {row.gpu_uuid: row.sandbox_id for row in rows}


def choose(
    node: str,
    leasable: Sequence[str],
    unhealthy: Sequence[str],
    taken: set[str],
    *,
    count: int,
    wanted: Sequence[str],
) -> list[str] | None:
    """The GPUs to lease, or None when they are busy now. Impossible requests raise."""
    if wanted:
        for uuid in wanted:
            if uuid in unhealthy:
                raise FailedPreconditionError(
                    f"GPU {uuid} is unhealthy and is not leased",
                    reason="GPU_UNHEALTHY",
                    metadata={"node": node, "gpu_uuid": uuid},
                )
            if uuid not in leasable:
                raise invalid_field("resources.gpu_uuids", f"node {node} has no GPU {uuid}")
        return None if taken.intersection(wanted) else list(wanted)
    if count > len(leasable):
        raise FailedPreconditionError(
            f"{count} GPU(s) requested but node {node} has {len(leasable)} healthy GPU(s)",
            reason="NOT_ENOUGH_GPUS",
            metadata={"node": node, "requested": str(count), "healthy": str(len(leasable))},
        )
    free = [uuid for uuid in leasable if uuid not in taken]
    return free[:count] if len(free) >= count else None


def lease(session: Session, node: str, sandbox_id: str, uuids: Sequence[str]) -> None:
    """Inserts the lease rows; raises LeaseConflict when another holder got there first."""
    now = datetime.now(UTC)
    session.add_all(
        GpuLeaseRow(node=node, gpu_uuid=uuid, sandbox_id=sandbox_id, leased_at=now)
        for uuid in uuids
    )
    try:
        session.flush()
    except IntegrityError as exc:
        raise LeaseConflict(str(uuids)) from exc
    # In the same transaction: the record names its GPUs exactly when it holds them.
    session.execute(
        update(SandboxRow)
        .where(SandboxRow.id == sandbox_id)
        .values(granted_gpu_uuids=sorted(uuids))
    )


def release(session: Session, sandbox_id: str) -> list[str]:
    rows = list(session.scalars(select(GpuLeaseRow).where(GpuLeaseRow.sandbox_id == sandbox_id)))
    session.execute(delete(GpuLeaseRow).where(GpuLeaseRow.sandbox_id == sandbox_id))
    return [row.gpu_uuid for row in rows]


def gpu_sets(inventory: Any) -> tuple[list[str], list[str]]:
    """(leasable, unhealthy) GPU UUIDs of an inventory snapshot: all but unhealthy lease."""
    if inventory is None:
        return [], []
    leasable = [g.uuid for g in inventory.gpus if g.health != "unhealthy"]
    unhealthy = [g.uuid for g in inventory.gpus if g.health == "unhealthy"]
    return leasable, unhealthy
