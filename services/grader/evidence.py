"""What the grader adds to a call for the record: an audit-chain entry for every call, and a
signed statement for every grading report (docs/verifiable-runs.md)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from mleb.evidence.chain import ChainRecord
from mleb.evidence.dsse import GRADING_PREDICATE
from mleb.reports import CompetitionReport

from services.common.audit_client import AuditChainClient
from services.common.auth import Caller
from services.common.errors import MlebError
from services.common.signing import SigningKeys
from services.common.version import mleb_version

log = structlog.get_logger("mleb.grader.evidence")


@dataclass
class GraderCall:
    rpc: str
    caller: Caller
    competition_id: str = ""
    submission_sha256: str = ""
    # For ValidateSubmission only whether it was valid: never anything score-derived.
    outcome: dict[str, Any] = field(default_factory=dict)
    record: ChainRecord | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "rpc": self.rpc,
            "role": self.caller.role.value,
            "subject": self.caller.subject,
            "tenant": self.caller.tenant_id,
            "sandbox_id": self.caller.sandbox_id,
            "competition_id": self.competition_id,
            "submission_sha256": self.submission_sha256,
            "outcome": {key: _json_safe(value) for key, value in self.outcome.items()},
        }


def _json_safe(value: Any) -> Any:
    """The chain stores strict JSON: a NaN or infinite score is kept as its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class GraderEvidence:
    def __init__(self, reporter: AuditChainClient, keys: SigningKeys) -> None:
        self._reporter = reporter
        self.keys = keys
        self._refusals: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def call(self, rpc: str, caller: Caller) -> AsyncIterator[GraderCall]:
        """Records the call once its outcome is known, before the caller hears it: when the
        chain cannot take the record, the caller gets UNAVAILABLE instead of the answer."""
        entry = GraderCall(rpc, caller)
        try:
            yield entry
        except MlebError as exc:
            entry.outcome = {"error": exc.code}
            # A refusal carries no score, so it is recorded without holding the refusal back
            # (a stream cut off mid-upload must end at once).
            task = asyncio.get_running_loop().create_task(self._record_refusal(entry))
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)
            raise
        (entry.record,) = await self._reporter.append([("grader_call", entry.fields())])

    async def _record_refusal(self, entry: GraderCall) -> None:
        try:
            await self._reporter.append([("grader_call", entry.fields())])
        except MlebError:
            log.warning("audit_record_lost_for_refused_call", rpc=entry.rpc, **entry.outcome)

    def grading_statement(self, report: CompetitionReport, call: GraderCall) -> str:
        """The report, bound to the submission's sha256 and to the call's audit record."""
        assert call.record is not None
        return self.keys.sign_statement(
            {report.submission_path or "submission.csv": call.submission_sha256},
            GRADING_PREDICATE,
            {
                "report": report.to_dict(),
                "audit_record": {"seq": call.record.seq, "hash": call.record.hash},
                "grader": {"subject": call.caller.subject, "role": call.caller.role.value},
                "mleb_version": mleb_version(),
            },
        )
