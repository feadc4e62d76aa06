"""Reading and writing sandbox rows. Callers own the transaction (session.begin())."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session

from services.common import db
from services.common.errors import NotFoundError, invalid_field
from services.sandbox.backends.base import NetworkMode
from services.sandbox.db.schema import EgressRow, GpuLeaseRow, LabelRow, LogEntryRow, SandboxRow
from services.sandbox.lifecycle.states import (
    ACTIVE,
    FailureClass,
    FailureReason,
    SandboxState,
    predecessors,
)
from services.sandbox.node.egress_proxy import EgressSums, EgressVerdict
from services.sandbox.records import (
    DescriptionVariant,
    EgressDestination,
    LogEntry,
    LogStream,
    ResourceUsage,
    SandboxFilter,
    SandboxRecord,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_sandbox"


def open_database(database_url: str) -> Engine:
    """Connects and brings the sandbox tables up to date."""
    engine = db.create_db_engine(database_url)
    db.run_migrations(engine, MIGRATIONS_DIR, VERSION_TABLE)
    return engine


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def insert_sandbox(session: Session, row: SandboxRow, labels: dict[str, str]) -> None:
    session.add(row)
    session.flush()
    for key, value in labels.items():
        session.add(LabelRow(sandbox_id=row.id, key=key, value=value))


def get_row(
    session: Session, sandbox_id: str, *, for_update: bool = False, tenant: str | None = None
) -> SandboxRow:
    """The sandbox's row. With a tenant, another tenant's sandbox is NOT_FOUND, worded exactly
    as a sandbox that does not exist, so its existence is not revealed."""
    query = select(SandboxRow).where(SandboxRow.id == sandbox_id)
    if tenant is not None:
        query = query.where(SandboxRow.tenant == tenant)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFoundError(
            f"no sandbox {sandbox_id!r}",
            reason="SANDBOX_NOT_FOUND",
            metadata={"sandbox_id": sandbox_id},
        )
    return row


def transition(
    session: Session,
    sandbox_id: str,
    target: SandboxState | None,
    values: Mapping[str, object],
    *,
    states: Iterable[SandboxState] | None = None,
    **conditions: object,
) -> bool:
    """A conditional UPDATE: applies `values` only if the row is still where the caller
    thinks it is. Atomic on SQLite and PostgreSQL alike, so racing writers cannot both win."""
    query = update(SandboxRow).where(SandboxRow.id == sandbox_id)
    allowed = predecessors(target) if target is not None else frozenset(states or ())
    if target is not None:
        values = {**values, "state": target.value}
    if allowed:
        query = query.where(SandboxRow.state.in_([s.value for s in allowed]))
    for name, value in conditions.items():
        column = getattr(SandboxRow, name)
        query = query.where(column.is_(None) if value is None else column == value)
    # An UPDATE's result is a CursorResult, which Session.execute's overloads do not say.
    result = cast("CursorResult[Any]", session.execute(query.values(**values)))
    return result.rowcount == 1


def find_by_idempotency_key(session: Session, key: str, tenant: str) -> SandboxRow | None:
    return session.scalars(
        select(SandboxRow).where(SandboxRow.idempotency_key == key, SandboxRow.tenant == tenant)
    ).one_or_none()


def tenants_of(session: Session, ids: Sequence[str]) -> dict[str, str]:
    query = select(SandboxRow.id, SandboxRow.tenant).where(SandboxRow.id.in_(list(ids)))
    return {sandbox_id: tenant for sandbox_id, tenant in session.execute(query)}


def rows_in_states(
    session: Session, states: Iterable[SandboxState], *, node: str | None = None
) -> list[SandboxRow]:
    query = select(SandboxRow).where(SandboxRow.state.in_([s.value for s in states]))
    if node is not None:
        query = query.where(SandboxRow.node == node)
    return list(session.scalars(query.order_by(SandboxRow.created_at, SandboxRow.id)))


def active_among(session: Session, ids: Sequence[str]) -> set[str]:
    active = [s.value for s in ACTIVE]
    found: set[str] = set()
    # Bounded batches keep the IN list within every database's parameter limit.
    for start in range(0, len(ids), 500):
        query = select(SandboxRow.id).where(
            SandboxRow.id.in_(ids[start : start + 500]), SandboxRow.state.in_(active)
        )
        found.update(session.scalars(query))
    return found


def labels_of(session: Session, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {i: {} for i in ids}
    for row in session.scalars(select(LabelRow).where(LabelRow.sandbox_id.in_(ids))):
        found[row.sandbox_id][row.key] = row.value
    return found


def leases_of(session: Session, ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {i: [] for i in ids}
    query = (
        select(GpuLeaseRow).where(GpuLeaseRow.sandbox_id.in_(ids)).order_by(GpuLeaseRow.gpu_uuid)
    )
    for row in session.scalars(query):
        found[row.sandbox_id].append(row.gpu_uuid)
    return found


def egress_of(session: Session, ids: Sequence[str]) -> dict[str, list[EgressDestination]]:
    found: dict[str, list[EgressDestination]] = {i: [] for i in ids}
    query = select(EgressRow).where(EgressRow.sandbox_id.in_(ids)).order_by(EgressRow.seq)
    for row in session.scalars(query):
        found[row.sandbox_id].append(
            EgressDestination(
                host=row.host,
                port=row.port,
                address=row.address,
                verdict=EgressVerdict(row.verdict),
                connections=row.connections,
                bytes_sent=row.bytes_sent,
                bytes_received=row.bytes_received,
                first_at=utc(row.first_at),  # type: ignore[arg-type]
                last_at=utc(row.last_at),  # type: ignore[arg-type]
            )
        )
    return found


def to_records(session: Session, rows: Sequence[SandboxRow]) -> list[SandboxRecord]:
    ids = [row.id for row in rows]
    labels = labels_of(session, ids)
    leases = leases_of(session, ids)
    egress = egress_of(session, ids)
    return [_record(row, labels[row.id], leases[row.id], egress[row.id]) for row in rows]


def to_record(session: Session, row: SandboxRow) -> SandboxRecord:
    return to_records(session, [row])[0]


def _record(
    row: SandboxRow,
    labels: dict[str, str],
    leases: list[str],
    egress: list[EgressDestination],
) -> SandboxRecord:
    return SandboxRecord(
        id=row.id,
        competition_id=row.competition_id,
        image=row.image,
        image_digest=row.image_digest,
        command=list(row.command),
        env=dict(row.env),
        secret_env_names=list(row.secret_env_names),
        cpus=row.cpus,
        memory_bytes=row.memory_bytes,
        shm_bytes=row.shm_bytes,
        pids_limit=row.pids_limit,
        gpu_count=row.gpu_count,
        requested_gpu_uuids=list(row.requested_gpu_uuids),
        time_limit_s=row.time_limit_s,
        network=NetworkMode(row.network_mode),
        allowed_hosts=list(row.allowed_hosts),
        description_variant=DescriptionVariant(row.description_variant),
        labels=labels,
        owner=row.owner,
        idempotency_key=row.idempotency_key or "",
        wait_for_gpus=row.wait_for_gpus,
        mlebench_compat=row.mlebench_compat,
        backend=row.backend,
        state=SandboxState(row.state),
        failure_class=FailureClass(row.failure_class) if row.failure_class else None,
        failure_reason=FailureReason(row.failure_reason) if row.failure_reason else None,
        failure_message=row.failure_message,
        exit_code=row.exit_code,
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
        deadline_at=utc(row.deadline_at),
        leased_gpu_uuids=list(row.granted_gpu_uuids),
        held_gpu_uuids=leases,
        usage=ResourceUsage(
            cpu_seconds=row.cpu_seconds,
            peak_memory_bytes=row.peak_memory_bytes,
            gpu_utilization_percent=row.gpu_utilization_percent,
            peak_gpu_memory_bytes=row.peak_gpu_memory_bytes,
            artifacts_size_bytes=row.artifacts_size_bytes,
            peak_disk_bytes=row.peak_disk_bytes or 0,
            log_bytes=row.agent_log_bytes or 0,
            log_lines_dropped=row.log_lines_dropped or 0,
        ),
        node=row.node,
        submission_collected=row.submission_collected,
        last_log_seq=row.last_log_seq,
        layout_root=row.layout_root,
        artifacts_deleted=row.artifacts_deleted_at is not None,
        tenant=row.tenant,
        egress=egress,
        egress_omitted_connections=row.egress_omitted_connections or 0,
        disk_bytes=row.disk_bytes or 0,
        tmp_bytes=row.tmp_bytes or 0,
        log_bytes=row.log_bytes or 0,
        disk_enforcement=row.disk_enforcement or "",
        attestation=row.attestation or "",
        attestation_error=row.attestation_error or "",
    )


# Listing: newest first, keyset-paginated so pages stay stable while sandboxes are created.


def _filter_digest(where: SandboxFilter) -> str:
    described = {
        "labels": sorted(where.labels.items()),
        "states": sorted(s.value for s in where.states),
        "owner": where.owner,
        "competition_id": where.competition_id,
        "tenant": where.tenant,
    }
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


def encode_page_token(row: SandboxRow, where: SandboxFilter) -> str:
    payload = {"c": utc(row.created_at).isoformat(), "i": row.id, "f": _filter_digest(where)}  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_page_token(token: str, where: SandboxFilter) -> tuple[datetime, str]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        created_at, sandbox_id, digest = payload["c"], payload["i"], payload["f"]
        created = datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise invalid_field("page_token", "not a token this service issued") from exc
    if digest != _filter_digest(where):
        raise invalid_field("page_token", "the filters changed since this token was issued")
    return created, str(sandbox_id)


def list_rows(
    session: Session, where: SandboxFilter, limit: int, after: tuple[datetime, str] | None
) -> list[SandboxRow]:
    query = select(SandboxRow)
    for key, value in where.labels.items():
        query = query.where(
            exists().where(
                LabelRow.sandbox_id == SandboxRow.id, LabelRow.key == key, LabelRow.value == value
            )
        )
    if where.states:
        query = query.where(SandboxRow.state.in_([s.value for s in where.states]))
    if where.owner:
        query = query.where(SandboxRow.owner == where.owner)
    if where.competition_id:
        query = query.where(SandboxRow.competition_id == where.competition_id)
    if where.tenant is not None:
        query = query.where(SandboxRow.tenant == where.tenant)
    if after is not None:
        created, sandbox_id = after
        query = query.where(
            or_(
                SandboxRow.created_at < created,
                and_(SandboxRow.created_at == created, SandboxRow.id < sandbox_id),
            )
        )
    query = query.order_by(SandboxRow.created_at.desc(), SandboxRow.id.desc()).limit(limit)
    return list(session.scalars(query))


# Logs


def append_logs(
    session: Session,
    sandbox_id: str,
    entries: Sequence[LogEntry],
    last_output_time: float | None,
    budget_used: tuple[int, int] | None = None,
) -> None:
    """Stores a batch and moves last_log_seq in the same transaction, with the log budget's
    (bytes charged, lines dropped) when given."""
    values: dict[str, object] = {}
    if entries:
        session.execute(
            insert(LogEntryRow),
            [
                {
                    "sandbox_id": sandbox_id,
                    "seq": e.seq,
                    "time": e.time,
                    "stream": e.stream.value,
                    "text": e.text,
                }
                for e in entries
            ],
        )
        values["last_log_seq"] = entries[-1].seq
    if last_output_time is not None:
        values["last_output_time"] = last_output_time
    if budget_used is not None:
        values["agent_log_bytes"], values["log_lines_dropped"] = budget_used
    if not values:
        return
    session.execute(update(SandboxRow).where(SandboxRow.id == sandbox_id).values(**values))


def read_logs(
    session: Session, sandbox_id: str, after_seq: int, limit: int, max_chars: int
) -> list[LogEntry]:
    """The entries after `after_seq`: at most `limit`, and no more text than `max_chars` in
    all (at least one entry). Lengths are read first, so a page of huge lines is never
    loaded whole."""
    after = (LogEntryRow.sandbox_id == sandbox_id, LogEntryRow.seq > after_seq)
    sizes = session.execute(
        select(LogEntryRow.seq, func.length(LogEntryRow.text))
        .where(*after)
        .order_by(LogEntryRow.seq)
        .limit(limit)
    ).all()
    if not sizes:
        return []
    last, total = sizes[0][0], 0
    for seq, chars in sizes:
        total += chars or 0
        if total > max_chars and seq != sizes[0][0]:
            break
        last = seq
    query = select(LogEntryRow).where(*after, LogEntryRow.seq <= last).order_by(LogEntryRow.seq)
    return [
        LogEntry(seq=r.seq, time=r.time, stream=LogStream(r.stream), text=r.text)
        for r in session.scalars(query)
    ]


# Egress


def add_egress(session: Session, sandbox_id: str, sums: EgressSums, max_destinations: int) -> None:
    """Adds summed proxy events to the sandbox's per-destination rows. Destinations past
    `max_destinations` are only counted on the sandbox row."""
    count, top = session.execute(
        select(func.count(), func.coalesce(func.max(EgressRow.seq), 0)).where(
            EgressRow.sandbox_id == sandbox_id
        )
    ).one()
    omitted = sums.omitted
    for (host, port, address, verdict), total in sums.sums.items():
        first, last = _moment(total.first_at), _moment(total.last_at)
        row = session.scalars(
            select(EgressRow).where(
                EgressRow.sandbox_id == sandbox_id,
                EgressRow.host == host,
                EgressRow.port == port,
                EgressRow.address == address,
                EgressRow.verdict == verdict,
            )
        ).one_or_none()
        if row is not None:
            row.connections += total.connections
            row.bytes_sent += total.bytes_sent
            row.bytes_received += total.bytes_received
            row.first_at = min(utc(row.first_at) or first, first)
            row.last_at = max(utc(row.last_at) or last, last)
        elif count < max_destinations:
            count, top = count + 1, top + 1
            session.add(
                EgressRow(
                    sandbox_id=sandbox_id,
                    seq=top,
                    host=host,
                    port=port,
                    address=address,
                    verdict=verdict,
                    connections=total.connections,
                    bytes_sent=total.bytes_sent,
                    bytes_received=total.bytes_received,
                    first_at=first,
                    last_at=last,
                )
            )
        else:
            omitted += total.connections
    if omitted:
        session.execute(
            update(SandboxRow)
            .where(SandboxRow.id == sandbox_id)
            .values(egress_omitted_connections=SandboxRow.egress_omitted_connections + omitted)
        )


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
