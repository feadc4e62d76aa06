"""The audit chain, kept in the registry's database (docs/verifiable-runs.md#the-audit-chain).

Services append events through AppendAuditEvents; the registry numbers them, stamps the time
and the reporting service, and links each to the one before in a single transaction. One
writer at a time: a process lock, plus a PostgreSQL advisory lock shared by every registry
replica, so seqs never fork. A service only answers its own caller after its event is
committed, which is what makes a lost record impossible without a lost answer. On SQLite,
where there is no such lock, a writer that raced another retries on the seq's primary key.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mleb.evidence.chain import GENESIS, ChainRecord, body_hash, canonical, link_hash
from sqlalchemy import BigInteger, DateTime, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from services.common import db
from services.common.auth import Caller, Role
from services.common.errors import UnavailableError, invalid_field
from services.registry.models import Base

KINDS = frozenset({"grader_call", "sandbox_lifecycle", "egress"})
# Set by the registry, never by the reporting service.
_STAMPED = frozenset({"kind", "seq", "tenant_seq", "time", "reporter"})
MAX_FIELDS_BYTES = 64 * 1024
MAX_EVENTS_PER_CALL = 1000
MAX_EXPORT_PAGE = 5000
_LOCK_NAME = "registry_audit_chain"
_MAX_RACES = 100


class AuditRecordRow(Base):
    __tablename__ = "registry_audit_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    body_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The canonical JSON the body_hash covers, stored as hashed.
    body: Mapped[str] = mapped_column(Text)
    # Who may read the body: the tenant it concerns, and the caller's role.
    tenant: Mapped[str] = mapped_column(String(256), index=True)
    # The record's number among its tenant's records (1, 2, ...): a lab's export that
    # withholds one of its own records leaves a gap here (mleb verify checks).
    tenant_seq: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def parse_event(kind: str, fields_json: str, index: int) -> dict[str, Any]:
    field = f"events[{index}]"
    if kind not in KINDS:
        raise invalid_field(f"{field}.kind", f"one of {', '.join(sorted(KINDS))}")
    if len(fields_json.encode()) > MAX_FIELDS_BYTES:
        raise invalid_field(f"{field}.fields_json", f"at most {MAX_FIELDS_BYTES} bytes")
    try:
        fields = json.loads(fields_json, parse_constant=_refuse_constant)
        canonical(fields)  # what will be hashed: no infinities (1e400), no runaway nesting
    except (ValueError, RecursionError) as exc:
        raise invalid_field(f"{field}.fields_json", f"not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise invalid_field(f"{field}.fields_json", "must be a JSON object")
    stamped = _STAMPED & fields.keys()
    if stamped:
        raise invalid_field(f"{field}.fields_json", f"{sorted(stamped)} are set by the registry")
    return {**fields, "kind": kind}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _record(row: AuditRecordRow, visible: bool) -> ChainRecord:
    return ChainRecord(
        row.seq, row.prev_hash, row.body_hash, row.hash, json.loads(row.body) if visible else None
    )


def visible_to(caller: Caller, row: AuditRecordRow) -> bool:
    """A lab sees its own tenant's records; other labs' bodies stay hidden (CONTRACTS.md,
    tenancy and verify). Service-role calls on a lab's competitions while its sandboxes ran
    reach it through the signed attestations, which the sandbox service writes from all."""
    return caller.role is Role.SERVICE or row.tenant == caller.tenant_id


class AuditChain:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()

    async def append(self, reporter: str, events: Sequence[dict[str, Any]]) -> list[ChainRecord]:
        if len(events) > MAX_EVENTS_PER_CALL:
            raise invalid_field("events", f"at most {MAX_EVENTS_PER_CALL} per call")
        return await asyncio.to_thread(self._append, reporter, list(events))

    def _append(self, reporter: str, events: list[dict[str, Any]]) -> list[ChainRecord]:
        # SQLite has no advisory lock: a replica that read the same head loses on the seq's
        # primary key, and reads the new head again.
        for _attempt in range(_MAX_RACES):
            try:
                return self._append_once(reporter, events)
            except IntegrityError:
                continue
        raise UnavailableError("the audit chain is too busy; try again", reason="AUDIT_BUSY")

    def _append_once(self, reporter: str, events: list[dict[str, Any]]) -> list[ChainRecord]:
        with self._lock, self._sessions.begin() as session:
            db.lock_for_transaction(session, _LOCK_NAME)
            head = session.scalars(
                select(AuditRecordRow).order_by(AuditRecordRow.seq.desc()).limit(1)
            ).first()
            seq, prev = (head.seq, head.hash) if head else (0, GENESIS)
            now = datetime.now(UTC)
            records = []
            tenant_seqs: dict[str, int] = {}
            for fields in events:
                seq += 1
                tenant = str(fields.get("tenant", ""))[:256]
                if tenant not in tenant_seqs:
                    tenant_seqs[tenant] = session.scalars(
                        select(func.coalesce(func.max(AuditRecordRow.tenant_seq), 0)).where(
                            AuditRecordRow.tenant == tenant
                        )
                    ).one()
                tenant_seqs[tenant] += 1
                body = {
                    **fields,
                    "seq": seq,
                    "tenant_seq": tenant_seqs[tenant],
                    "time": now.isoformat(),
                    "reporter": reporter,
                }
                digest = body_hash(body)
                row = AuditRecordRow(
                    seq=seq,
                    prev_hash=prev,
                    body_hash=digest,
                    hash=link_hash(prev, digest),
                    body=canonical(body).decode(),
                    tenant=tenant,
                    tenant_seq=tenant_seqs[tenant],
                    role=str(body.get("role", ""))[:16],
                    recorded_at=now,
                )
                session.add(row)
                records.append(_record(row, True))
                prev = row.hash
            return records

    async def export(
        self, caller: Caller, from_seq: int, to_seq: int
    ) -> tuple[list[ChainRecord], int, int]:
        """Records from_seq..to_seq (0: the head), at most MAX_EXPORT_PAGE; also where the
        next page starts (0 when done) and the head's seq."""
        if from_seq < 1:
            raise invalid_field("from_seq", "must be at least 1")
        if to_seq and to_seq < from_seq:
            raise invalid_field("to_seq", "must be 0 or at least from_seq")
        return await asyncio.to_thread(self._export, caller, from_seq, to_seq)

    def _export(
        self, caller: Caller, from_seq: int, to_seq: int
    ) -> tuple[list[ChainRecord], int, int]:
        with self._sessions() as session:
            head = (
                session.scalars(
                    select(AuditRecordRow.seq).order_by(AuditRecordRow.seq.desc()).limit(1)
                ).first()
                or 0
            )
            last = min(to_seq or head, head)
            rows = session.scalars(
                select(AuditRecordRow)
                .where(AuditRecordRow.seq >= from_seq, AuditRecordRow.seq <= last)
                .order_by(AuditRecordRow.seq)
                .limit(MAX_EXPORT_PAGE)
            ).all()
            records = [_record(row, visible_to(caller, row)) for row in rows]
        reached = records[-1].seq if records else from_seq - 1
        return records, (reached + 1 if reached < last else 0), head
