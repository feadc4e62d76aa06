"""GraderService over gRPC: proto in, GraderCore, proto out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import IO

import grpc
from mleb.grader.v1 import grader_service_pb2, grader_service_pb2_grpc
from mleb.ranking import ranking_to_proto
from mleb.report_proto import report_to_proto

from services.common.auth import Role, current_caller, require_competition_access
from services.common.errors import invalid_field
from services.common.signing import public_keys_proto
from services.grader.bundles import GradingBundle
from services.grader.core import Admission, GraderCore
from services.grader.evidence import GraderCall, GraderEvidence
from services.grader.uploads import SubmissionBuffer

_LAB = frozenset({Role.SERVICE, Role.LAB})
RPC_ROLES = {
    "ValidateSubmission": frozenset({Role.SERVICE, Role.LAB, Role.SANDBOX}),
    "ScoreSubmission": _LAB,
    "GradeSubmission": _LAB,
    "RankScore": _LAB,
    "ListPublicKeys": _LAB,
}

# The three upload RPCs stream messages of the same shape: a header first, then chunks.
SubmissionRequest = (
    grader_service_pb2.ValidateSubmissionRequest
    | grader_service_pb2.ScoreSubmissionRequest
    | grader_service_pb2.GradeSubmissionRequest
)


async def read_header(
    requests: AsyncIterator[SubmissionRequest],
) -> grader_service_pb2.SubmissionHeader:
    """The first message alone: nothing of the body has been read when this returns."""
    first = await anext(aiter(requests), None)
    if first is None or not first.HasField("header"):
        raise invalid_field("header", "the first message must carry the submission header")
    header = first.header
    if not header.competition_id:
        raise invalid_field("header.competition_id", "required")
    if header.size_bytes < 0:
        raise invalid_field("header.size_bytes", "must not be negative")
    require_competition_access(current_caller(), header.competition_id)
    return header


async def receive_body(
    requests: AsyncIterator[SubmissionRequest], limit: Admission
) -> SubmissionBuffer:
    """Buffers the chunks, and stops reading the moment the cap is crossed."""
    buffer = SubmissionBuffer(limit.max_bytes, spool_bytes=limit.spool_bytes, subject=limit.subject)
    try:
        async for request in requests:
            if request.HasField("header"):
                raise invalid_field("header", "only the first message may carry a header")
            buffer.write(request.chunk)
    except BaseException:
        buffer.close()
        raise
    return buffer


@contextlib.asynccontextmanager
async def receive_submission(
    core: GraderCore, requests: AsyncIterator[SubmissionRequest]
) -> AsyncIterator[
    tuple[grader_service_pb2.SubmissionHeader, SubmissionBuffer, asyncio.Future[GradingBundle]]
]:
    """Header, then the caller's limits (decided before the body), then the body; with the
    competition's bundle, fetched meanwhile."""
    header = await read_header(requests)
    async with core.admit_upload(
        current_caller(), header.competition_id, header.size_bytes
    ) as admission:
        with await receive_body(requests, admission) as buffer:
            # 0 means the client did not say; anything else must be what arrived.
            if header.size_bytes and buffer.size != header.size_bytes:
                raise invalid_field(
                    "header.size_bytes",
                    f"declares {header.size_bytes} bytes, but {buffer.size} were uploaded",
                )
            yield header, buffer, admission.bundle


@dataclasses.dataclass(frozen=True)
class Upload:
    header: grader_service_pb2.SubmissionHeader
    buffer: SubmissionBuffer
    bundle: GradingBundle

    async def to_grade(self) -> tuple[str, IO[bytes], GradingBundle]:
        return self.header.competition_id, await self.buffer.file(), self.bundle


class GraderServicer(grader_service_pb2_grpc.GraderServiceServicer):
    def __init__(self, core: GraderCore, evidence: GraderEvidence) -> None:
        self._core = core
        self._evidence = evidence

    @property
    def core(self) -> GraderCore:
        return self._core

    @contextlib.asynccontextmanager
    async def _upload(
        self, rpc: str, requests: AsyncIterator[SubmissionRequest]
    ) -> AsyncIterator[tuple[GraderCall, Upload]]:
        """An uploaded submission, with the call's audit record open around it. The body is
        hashed while it is graded; the record and the statement get the digest after."""
        async with (
            self._evidence.call(rpc, current_caller()) as call,
            receive_submission(self._core, requests) as (header, buffer, bundle),
        ):
            call.competition_id = header.competition_id
            digest = asyncio.ensure_future(buffer.sha256())
            try:
                yield call, Upload(header, buffer, await bundle)
            except BaseException:
                # The refusal's record names the body too; a failed hash never replaces it.
                with contextlib.suppress(Exception):
                    call.submission_sha256 = await digest
                raise
            # An answer is only signed with its digest: a failed hash fails the call.
            call.submission_sha256 = await digest

    async def ValidateSubmission(
        self,
        request_iterator: AsyncIterator[grader_service_pb2.ValidateSubmissionRequest],
        context: grpc.aio.ServicerContext,
    ) -> grader_service_pb2.ValidateSubmissionResponse:
        async with self._upload("ValidateSubmission", request_iterator) as (call, upload):
            outcome = await self._core.validate(*(await upload.to_grade()))
            call.outcome = {"valid": outcome.valid}
        # Only validity and the reason leave: never the score.
        return grader_service_pb2.ValidateSubmissionResponse(
            valid=outcome.valid, message=outcome.validation_message(), reason=outcome.error
        )

    async def ScoreSubmission(
        self,
        request_iterator: AsyncIterator[grader_service_pb2.ScoreSubmissionRequest],
        context: grpc.aio.ServicerContext,
    ) -> grader_service_pb2.ScoreSubmissionResponse:
        async with self._upload("ScoreSubmission", request_iterator) as (call, upload):
            outcome, version = await self._core.score(*(await upload.to_grade()))
            call.outcome = {"valid": outcome.valid, "score": outcome.score}
        response = grader_service_pb2.ScoreSubmissionResponse(
            valid=outcome.valid, error=outcome.error, grader_spec_version=version
        )
        if outcome.score is not None:
            response.score = outcome.score
        return response

    async def GradeSubmission(
        self,
        request_iterator: AsyncIterator[grader_service_pb2.GradeSubmissionRequest],
        context: grpc.aio.ServicerContext,
    ) -> grader_service_pb2.GradeSubmissionResponse:
        async with self._upload("GradeSubmission", request_iterator) as (call, upload):
            competition_id, submission, bundle = await upload.to_grade()
            report = await self._core.grade(
                competition_id, submission, upload.header.submission_path, bundle=bundle
            )
            call.outcome = {
                "valid": report.valid_submission,
                "score": report.score,
                "any_medal": report.any_medal,
            }
        return grader_service_pb2.GradeSubmissionResponse(
            report=report_to_proto(report),
            statement=self._evidence.grading_statement(report, call),
        )

    async def RankScore(
        self, request: grader_service_pb2.RankScoreRequest, context: grpc.aio.ServicerContext
    ) -> grader_service_pb2.RankScoreResponse:
        async with self._evidence.call("RankScore", current_caller()) as call:
            call.competition_id = request.competition_id
            if not request.competition_id:
                raise invalid_field("competition_id", "required")
            score = request.score if request.HasField("score") else None
            ranking, awards_medals = await self._core.rank(request.competition_id, score)
            call.outcome = {"score": score, "any_medal": ranking.any_medal}
        return grader_service_pb2.RankScoreResponse(
            ranking=ranking_to_proto(ranking, awards_medals=awards_medals)
        )

    async def ListPublicKeys(
        self, request: grader_service_pb2.ListPublicKeysRequest, context: grpc.aio.ServicerContext
    ) -> grader_service_pb2.ListPublicKeysResponse:
        return grader_service_pb2.ListPublicKeysResponse(
            keys=public_keys_proto(self._evidence.keys)
        )
