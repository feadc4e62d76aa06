"""What `mleb verify` found, and what it learnt of each run along the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mleb.evidence.dsse import Envelope, EvidenceError
from mleb.evidence.keys import Keyring
from mleb.lab.records import RecordError, RunRecord, read_bounded

ENVELOPE_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Finding:
    file: str
    check: str
    ok: bool
    detail: str = ""


@dataclass
class AttestedRun:
    """What one run's evidence says, once its signatures checked out."""

    run_id: str
    record: RunRecord
    predicate: dict[str, Any]
    submission_sha256: str = ""
    graded_seq: int = 0
    graded_hash: str = ""

    @property
    def sandbox_id(self) -> str:
        return str(self.predicate.get("sandbox", {}).get("id", ""))

    @property
    def tenant(self) -> str:
        return str(self.predicate.get("sandbox", {}).get("tenant", ""))

    @property
    def audit(self) -> dict[str, Any]:
        return self.predicate.get("audit") or {}


@dataclass
class Verification:
    keys: Keyring
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    def add(self, file: Path | str, check: str, problem: str | None, ok_detail: str = "") -> bool:
        self.findings.append(Finding(str(file), check, problem is None, problem or ok_detail))
        return problem is None

    def envelope(self, path: Path, predicate_type: str) -> dict[str, Any] | None:
        """The statement of a signed envelope, or None (with a finding) if it fails."""
        try:
            envelope = Envelope.from_json(read_bounded(path, ENVELOPE_BYTES))
            keyid = envelope.verify(self.keys)
            statement = envelope.statement()
        except (RecordError, EvidenceError) as exc:
            self.add(path, "signature", str(exc))
            return None
        if statement.get("predicateType") != predicate_type:
            self.add(path, "predicateType", f"is {statement.get('predicateType')!r}")
            return None
        if not isinstance(statement.get("predicate"), dict):
            self.add(path, "predicate", "is not an object")
            return None
        self.add(path, "signature", None, f"key {keyid[:16]}")
        return statement
