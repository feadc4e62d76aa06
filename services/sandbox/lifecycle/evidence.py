"""The sandbox's part of the evidence (docs/verifiable-runs.md): lifecycle and egress records
in the audit chain, and the signed attestation written with the terminal state."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from mleb.evidence.chain import SCORING_RPCS, ChainRecord, segment_digest
from mleb.evidence.dsse import SANDBOX_PREDICATE

from services.common.audit_client import AuditChainClient
from services.common.errors import MlebError, UnavailableError
from services.common.signing import SigningKeys
from services.common.version import mleb_version
from services.sandbox.gpus.simulated_nvml import is_simulated
from services.sandbox.node import artifacts
from services.sandbox.node.layout import CompetitionSource
from services.sandbox.records import SandboxRecord

log = structlog.get_logger("mleb.sandbox.evidence")
T = TypeVar("T")

# How long finishing waits for the audit chain before recording the end unattested.
ATTEST_PATIENCE_S = 30.0


class Identified(Protocol):
    """A sandbox row or record: what every record of it in the chain names. Read-only, so
    that a frozen SandboxRecord satisfies it as well as a row."""

    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def competition_id(self) -> str: ...


def lifecycle(sandbox: Identified, event: str, **details: Any) -> tuple[str, dict[str, Any]]:
    return (
        "sandbox_lifecycle",
        {
            "event": event,
            "sandbox_id": sandbox.id,
            "tenant": sandbox.tenant,
            "role": "service",
            "competition_id": sandbox.competition_id,
            **details,
        },
    )


def submission_sha256(root: Path) -> str:
    """The collected submission's sha256, read without following links; "" without one."""
    try:
        dir_fd = os.open(root / "submission", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        fd = os.open("submission.csv", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return ""
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start and end else 0.0


@dataclass(frozen=True)
class EvidenceSetup:
    """Where the sandbox service's evidence goes, and what signs it."""

    chain: AuditChainClient
    keys: SigningKeys


def scoring_calls(record: SandboxRecord, window: list[ChainRecord]) -> list[dict[str, Any]]:
    """Scoring calls on the sandbox's competition, by its owner's tenant or the service role,
    while it existed. Signed here, from the whole chain, so a redacted export cannot hide one;
    other labs' calls stay out (CONTRACTS.md, tenancy and verify)."""
    return [
        {key: body.get(key) for key in ("seq", "rpc", "role", "tenant", "submission_sha256")}
        for body in (r.body or {} for r in window)
        if body.get("rpc") in SCORING_RPCS
        and body.get("competition_id") == record.competition_id
        and (body.get("tenant") == record.tenant or body.get("role") == "service")
    ]


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Retries while the chain is unavailable; the caller's timeout bounds it."""
    delay = 0.5
    while True:
        try:
            return await call()
        except UnavailableError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class SandboxEvidence:
    def __init__(
        self,
        chain: AuditChainClient,
        keys: SigningKeys,
        competitions: CompetitionSource,
        archive: Callable[[SandboxRecord], Awaitable[artifacts.Archive]],
    ) -> None:
        self._chain = chain
        self.keys = keys
        self._competitions = competitions
        # Builds the record's artifacts archive, exactly as DownloadArtifacts would.
        self._archive = archive
        # GPU UUID -> model name, as this node's inventory names them.
        self.gpu_names: dict[str, str] = {}

    async def created(self, record: SandboxRecord) -> int:
        """Appends the "created" record; its seq opens the sandbox's audit segment."""
        event = lifecycle(
            record, "created", image=record.image, owner=record.owner, labels=dict(record.labels)
        )
        (entry,) = await self._chain.append([event])
        return entry.seq

    async def launching(self, sandbox: Identified, image: str, gpu_uuids: list[str]) -> None:
        """Appended before the agent starts, so nothing it does precedes a record of it."""
        await self._chain.append([lifecycle(sandbox, "launching", image=image, gpus=gpu_uuids)])

    async def _archive_sha256(self, record: SandboxRecord) -> tuple[str, str]:
        delay, waited = 0.2, 0.0
        while True:
            try:
                archive = await self._archive(record)
                break
            except MlebError as exc:
                # Builds are capped node-wide: wait for a slot rather than attest less.
                if exc.reason == "ARTIFACTS_BUSY" and waited < ATTEST_PATIENCE_S:
                    await asyncio.sleep(delay)
                    waited, delay = waited + delay, min(delay * 2, 2.0)
                    continue
                # Too big or too many files: the download refuses it too.
                return "", f"artifacts archive not attested: {exc}"
        archive.remove()
        return archive.sha256, ""

    async def _bundle_digest(self, record: SandboxRecord) -> str:
        try:
            found = await self._competitions.get(record.competition_id, record.description_variant)
        except MlebError:
            return ""
        return found.bundle_digest

    async def attest(self, record: SandboxRecord, first_seq: int) -> tuple[str, str]:
        """(attestation, "") or ("", why not), for a record in its terminal state. Records
        the end and the egress in the chain, reads the sandbox's segment back, and signs."""
        submission = await asyncio.to_thread(submission_sha256, Path(record.layout_root))
        archive_sha256, archive_note = await self._archive_sha256(record)
        bundle_digest = await self._bundle_digest(record)
        try:
            async with asyncio.timeout(ATTEST_PATIENCE_S):
                window = await self._record_end(record, first_seq, submission, archive_sha256)
        except (TimeoutError, MlebError) as exc:
            log.error("attestation_failed", sandbox_id=record.id, error=str(exc))
            return "", f"not attested: {exc or 'the audit chain did not answer in time'}"
        subjects = {}
        if submission:
            subjects["submission.csv"] = submission
        if archive_sha256:
            subjects["artifacts.tar"] = archive_sha256
        segment = [r for r in window if (r.body or {}).get("sandbox_id") == record.id]
        predicate = self._predicate(record, bundle_digest, segment, archive_note)
        predicate["scoring_calls"] = scoring_calls(record, window)
        return self.keys.sign_statement(subjects, SANDBOX_PREDICATE, predicate), ""

    async def _record_end(
        self, record: SandboxRecord, first_seq: int, submission: str, archive_sha256: str
    ) -> list[ChainRecord]:
        events = [
            (
                "egress",
                {
                    "sandbox_id": record.id,
                    "tenant": record.tenant,
                    "role": "service",
                    "host": d.host,
                    "port": d.port,
                    "verdict": d.verdict.value,
                    "connections": d.connections,
                    "bytes_sent": d.bytes_sent,
                    "bytes_received": d.bytes_received,
                },
            )
            for d in record.egress
        ]
        events.append(
            lifecycle(
                record,
                "finished",
                state=record.state.value,
                failure_reason=record.failure_reason.value if record.failure_reason else "",
                submission_sha256=submission,
                artifacts_sha256=archive_sha256,
            )
        )
        # Each step is retried on its own: a failed read never appends the records twice.
        appended = await _retrying(lambda: self._chain.append(events))
        return await _retrying(lambda: self._chain.export(first_seq or 1, appended[-1].seq))

    def _predicate(
        self,
        record: SandboxRecord,
        bundle_digest: str,
        segment: list[ChainRecord],
        archive_note: str,
    ) -> dict[str, Any]:
        bodies = [r.body or {} for r in segment]
        validations = [b for b in bodies if b.get("rpc") == "ValidateSubmission"]
        wall_s = _seconds(record.started_at, record.finished_at)
        gpus = record.leased_gpu_uuids
        usage = record.usage
        return {
            "sandbox": {
                "id": record.id,
                "tenant": record.tenant,
                "owner": record.owner,
                "node": record.node,
                "backend": record.backend,
                "labels": dict(record.labels),
            },
            "image": {"reference": record.image, "digest": record.image_digest},
            "competition": {
                "id": record.competition_id,
                "bundle_digest": bundle_digest,
                "description_variant": record.description_variant.value,
            },
            "resources": {
                "requested": {
                    "cpus": record.cpus,
                    "memory_bytes": record.memory_bytes,
                    "gpu_count": record.gpu_count,
                },
                "granted": {
                    "cpus": record.cpus,
                    "memory_bytes": record.memory_bytes,
                    "gpus": [
                        {
                            "uuid": uuid,
                            "model": self.gpu_names.get(uuid, ""),
                            "simulated": is_simulated(uuid),
                        }
                        for uuid in gpus
                    ],
                },
            },
            "time": {
                "limit_s": record.time_limit_s,
                "created_at": record.created_at.isoformat(),
                "started_at": record.started_at.isoformat() if record.started_at else None,
                "finished_at": record.finished_at.isoformat() if record.finished_at else None,
                "wall_s": wall_s,
            },
            "network": {
                "mode": record.network.value,
                "allowed_hosts": list(record.allowed_hosts),
                "egress": [b for b in bodies if b.get("kind") == "egress"],
                "egress_omitted_connections": record.egress_omitted_connections,
            },
            "validation_calls": len(validations),
            "audit": {
                "first_seq": segment[0].seq if segment else 0,
                "last_seq": segment[-1].seq if segment else 0,
                "last_hash": segment[-1].hash if segment else "",
                "records": len(segment),
                "segment_digest": segment_digest(segment),
            },
            "usage": {
                "cpu_seconds": usage.cpu_seconds,
                "peak_memory_bytes": usage.peak_memory_bytes,
                "gpu_seconds": wall_s * len(gpus),
                # NVML's mean over the run's samples; None without a leased GPU.
                "gpu_utilization_percent": usage.gpu_utilization_percent if gpus else None,
                "peak_gpu_memory_bytes": usage.peak_gpu_memory_bytes,
            },
            "artifacts_note": archive_note,
            "outcome": {
                "state": record.state.value,
                "failure_class": record.failure_class.value if record.failure_class else "",
                "failure_reason": record.failure_reason.value if record.failure_reason else "",
                "exit_code": record.exit_code,
                "submission_collected": record.submission_collected,
            },
            "mleb_version": mleb_version(),
        }
