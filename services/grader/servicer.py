"""GraderService over gRPC: proto in, GraderCore, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from mleb.grader.v1 import grader_service_pb2, grader_service_pb2_grpc

from services.common.auth import Role, current_caller, require_competition_access
from services.common.errors import invalid_field
from services.common.ranking import ranking_to_proto
from services.grader.core import GraderCore
from services.grader.report_proto import report_to_proto
from services.grader.uploads import SubmissionBuffer

_LAB = frozenset({Role.SERVICE, Role.LAB})
RPC_ROLES = {
    "ValidateSubmission": frozenset({Role.SERVICE, Role.LAB, Role.SANDBOX}),
    "ScoreSubmission": _LAB,
    "GradeSubmission": _LAB,
    "RankScore": _LAB,
}


async def receive_submission(
    requests: AsyncIterator[Any], max_bytes: int
) -> tuple[grader_service_pb2.SubmissionHeader, SubmissionBuffer]:
    """Reads the header, checks who may send it, then buffers the chunks under the cap."""
    first = await anext(aiter(requests), None)
    if first is None or not first.HasField("header"):
        raise invalid_field("header", "the first message must carry the submission header")
    header = first.header
    if not header.competition_id:
        raise invalid_field("header.competition_id", "required")
    require_competition_access(current_caller(), header.competition_id)
    buffer = SubmissionBuffer(max_bytes)
    try:
        buffer.check_declared_size(header.size_bytes)
        async for request in requests:
            if request.HasField("header"):
                raise invalid_field("header", "only the first message may carry a header")
            buffer.write(request.chunk)
    except BaseException:
        buffer.close()
        raise
    return header, buffer


class GraderServicer(grader_service_pb2_grpc.GraderServiceServicer):
    def __init__(self, core: GraderCore, max_submission_bytes: int) -> None:
        self._core = core
        self._max_bytes = max_submission_bytes

    async def ValidateSubmission(self, request_iterator, context):
        header, buffer = await receive_submission(request_iterator, self._max_bytes)
        with buffer:
            outcome = await self._core.validate(
                current_caller(), header.competition_id, buffer.file()
            )
        # Only validity and the reason leave: never the score.
        return grader_service_pb2.ValidateSubmissionResponse(
            valid=outcome.valid, message=outcome.validation_message(), reason=outcome.error
        )

    async def ScoreSubmission(self, request_iterator, context):
        header, buffer = await receive_submission(request_iterator, self._max_bytes)
        with buffer:
            outcome, version = await self._core.score(header.competition_id, buffer.file())
        response = grader_service_pb2.ScoreSubmissionResponse(
            valid=outcome.valid, error=outcome.error, grader_spec_version=version
        )
        if outcome.score is not None:
            response.score = outcome.score
        return response

    async def GradeSubmission(self, request_iterator, context):
        header, buffer = await receive_submission(request_iterator, self._max_bytes)
        with buffer:
            report = await self._core.grade(
                header.competition_id, buffer.file(), header.submission_path
            )
        return grader_service_pb2.GradeSubmissionResponse(report=report_to_proto(report))

    async def RankScore(self, request, context):
        if not request.competition_id:
            raise invalid_field("competition_id", "required")
        score = request.score if request.HasField("score") else None
        ranking, awards_medals = await self._core.rank(request.competition_id, score)
        return grader_service_pb2.RankScoreResponse(
            ranking=ranking_to_proto(ranking, awards_medals=awards_medals)
        )
