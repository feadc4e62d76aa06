"""The grader checks the upload header against the body (issue 16, item 4).

A size_bytes that disagrees with the bytes uploaded (10, or -5), and a 3 MB
submission_path, were accepted. Through real registry and grader servers on port 0.
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, submission_csv


def _field(error: grpc.aio.AioRpcError) -> str:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0].field
    raise AssertionError(error.details())


def _requests(kind, header: pb.SubmissionHeader, body: bytes):
    async def stream():
        yield kind(header=header)
        yield kind(chunk=body)

    return stream()


@pytest.mark.parametrize(
    ("header_fields", "field"),
    [
        ({"size_bytes": 10}, "header.size_bytes"),
        ({"size_bytes": -5}, "header.size_bytes"),
        ({"size_bytes": 10**6}, "header.size_bytes"),
        ({"submission_path": "p" * (3 * 1024**2)}, "header.submission_path"),
        ({"submission_path": "sub\x00.csv"}, "header.submission_path"),
        ({"competition_id": "c" * 200}, "header.competition_id"),
    ],
)
async def test_header_disagreeing_with_the_upload_is_refused(
    stack, lab_token, header_fields, field
) -> None:
    body = submission_csv()
    fields = {"competition_id": COMPETITION, "submission_path": "submission.csv"} | header_fields
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.grader_port}") as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        for call, kind in (
            (stub.ValidateSubmission, pb.ValidateSubmissionRequest),
            (stub.GradeSubmission, pb.GradeSubmissionRequest),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(
                    _requests(kind, pb.SubmissionHeader(**fields), body),
                    metadata=bearer(lab_token),
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert _field(err.value) == field
            assert len(err.value.details()) < 600


async def test_a_matching_or_absent_size_is_accepted(stack, lab_token) -> None:
    body = submission_csv()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.grader_port}") as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        for size in (0, len(body)):
            header = pb.SubmissionHeader(competition_id=COMPETITION, size_bytes=size)
            reply = await stub.ValidateSubmission(
                _requests(pb.ValidateSubmissionRequest, header, body), metadata=bearer(lab_token)
            )
            assert reply.valid, reply.message
