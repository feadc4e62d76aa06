"""The evidence a run group keeps beside its results (docs/verifiable-runs.md#run-groups):
each run's sandbox attestation and grading statement, and the group's audit-chain segment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mleb.client import AsyncClient
from mleb.evidence.chain import ChainRecord, record_from_proto
from mleb.evidence.dsse import Envelope, EvidenceError
from mleb.lab.records import write_text_atomic

ATTESTATION_FILE = "attestation.dsse.json"
GRADING_STATEMENT_FILE = "grading_report.dsse.json"
AUDIT_CHAIN_FILE = "audit_chain.jsonl"


def write_envelope(path: Path, envelope_json: str) -> None:
    """Writes a DSSE envelope as received, once it parses; removes a stale one otherwise."""
    if not envelope_json:
        path.unlink(missing_ok=True)
        return
    Envelope.from_json(envelope_json)
    write_text_atomic(path, envelope_json)


def _predicate(path: Path) -> dict[str, Any]:
    try:
        return Envelope.from_json(path.read_bytes()).statement().get("predicate", {})
    except (OSError, EvidenceError):
        return {}


def chain_range(group_dir: Path) -> tuple[int, int] | None:
    """The seqs the group's evidence points into: from the first sandbox's first record to
    the last grading call's record."""
    firsts, lasts = [], []
    for path in group_dir.glob(f"*/{ATTESTATION_FILE}"):
        audit = _predicate(path).get("audit", {})
        if audit.get("first_seq"):
            firsts.append(int(audit["first_seq"]))
            lasts.append(int(audit["last_seq"]))
    for path in group_dir.glob(f"*/{GRADING_STATEMENT_FILE}"):
        seq = _predicate(path).get("audit_record", {}).get("seq")
        if seq:
            lasts.append(int(seq))
    return (min(firsts), max(lasts)) if firsts else None


async def export_chain(client: AsyncClient, group_dir: Path) -> int:
    """Writes audit_chain.jsonl for the group's range; returns the number of records."""
    span = chain_range(group_dir)
    if span is None:
        return 0
    records: list[ChainRecord] = []
    next_from, last = span
    while next_from:
        page = await client.export_audit_chain(next_from, last)
        records.extend(record_from_proto(r) for r in page.records)
        next_from = page.next_from_seq
    write_text_atomic(group_dir / AUDIT_CHAIN_FILE, "".join(r.to_json() + "\n" for r in records))
    return len(records)
