"""The audit chain: each record's hash covers its body's hash and the previous record's hash.

    body_hash = sha256(canonical JSON of the body)
    hash      = sha256(bytes.fromhex(prev_hash) + bytes.fromhex(body_hash))

The first record's prev_hash is GENESIS. A record exported to a lab that may not see its body
keeps seq, prev_hash, body_hash and hash, so continuity checks without revealing it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mleb.evidence.dsse import EvidenceError

GENESIS = "0" * 64
# Grader calls whose answer is derived from the private answers.
SCORING_RPCS = frozenset({"ScoreSubmission", "GradeSubmission"})


def canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def body_hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def link_hash(prev_hash: str, digest: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + bytes.fromhex(digest)).hexdigest()


@dataclass(frozen=True)
class ChainRecord:
    seq: int
    prev_hash: str
    body_hash: str
    hash: str
    # None where the exporter withheld it (another tenant's record).
    body: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "prev_hash": self.prev_hash,
                "body_hash": self.body_hash,
                "hash": self.hash,
                "body": self.body,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> ChainRecord:
        try:
            data = json.loads(line)
            body = data.get("body")
            if body is not None and not isinstance(body, dict):
                raise TypeError("body is not an object")
            return cls(
                int(data["seq"]), str(data["prev_hash"]), str(data["body_hash"]),
                str(data["hash"]), body,
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError,
                RecursionError) as exc:  # fmt: skip
            raise EvidenceError(f"not an audit record: {type(exc).__name__}: {exc}") from exc


def record_from_proto(record: Any) -> ChainRecord:
    """From an mleb.registry.v1.AuditRecord."""
    body = json.loads(record.body_json) if record.body_json else None
    return ChainRecord(record.seq, record.prev_hash, record.body_hash, record.hash, body)


def check_record(record: ChainRecord) -> str | None:
    """What is wrong with one record on its own, or None."""
    try:
        if record.body is not None:
            if body_hash(record.body) != record.body_hash:
                return "body does not match body_hash"
            if record.body.get("seq") != record.seq:
                return "body's seq is not the record's seq"
        if link_hash(record.prev_hash, record.body_hash) != record.hash:
            return "hash is not sha256(prev_hash + body_hash)"
    except ValueError:
        return "a hash is not hex"
    return None


def check_chain(records: Sequence[ChainRecord]) -> list[str]:
    """Problems with a contiguous segment: each record sound, seqs consecutive, each
    prev_hash the hash before it. Empty when the segment holds together."""
    problems = []
    for index, record in enumerate(records):
        problem = check_record(record)
        if problem:
            problems.append(f"record {record.seq}: {problem}")
        if index == 0:
            continue
        before = records[index - 1]
        if record.seq != before.seq + 1:
            problems.append(f"records {before.seq + 1}..{record.seq - 1} are missing")
        elif record.prev_hash != before.hash:
            problems.append(f"record {record.seq}: prev_hash is not record {before.seq}'s hash")
    if records and records[0].seq == 1 and records[0].prev_hash != GENESIS:
        problems.append("record 1 does not start from the genesis hash")
    return problems


def segment_digest(records: Iterable[ChainRecord]) -> str:
    """sha256 over the hashes of `records`, in seq order, one per line."""
    hashes = "".join(r.hash + "\n" for r in sorted(records, key=lambda r: r.seq))
    return hashlib.sha256(hashes.encode()).hexdigest()


def read_chain(text: str) -> list[ChainRecord]:
    return [ChainRecord.from_json(line) for line in text.splitlines() if line.strip()]
