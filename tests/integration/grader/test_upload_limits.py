"""Validation uploads from a hostile sandbox, through real registry and grader servers.

Each attack's limit must be decided from the header, before the body is read: the test
counts how many bytes the client managed to hand to gRPC, and a client whose upload the
server keeps reading past the bound stalls instead of finishing, so old code fails by
timeout rather than by parsing gigabytes.
"""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.auth import Role
from services.grader.app import grader_service
from services.grader.uploads import SandboxUploadPolicy
from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, submission_csv

MIB = 1024**2
# Well past the sandbox cap (the 4 MiB floor: the test answers are tiny), and past what
# gRPC flow control lets a client buffer ahead of a server that stopped reading.
READ_BOUND = 64 * MIB
_CHUNK = b"x" * MIB
_ATTACK_TIMEOUT_S = 60.0


@dataclasses.dataclass
class Upload:
    """A request stream that counts what it handed over and stalls past a bound."""

    size_bytes: int = 0
    body_bytes: int = 1024**3
    stall_after: int = READ_BOUND
    sent: int = 0
    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def __call__(self):
        header = pb.SubmissionHeader(
            competition_id=COMPETITION, submission_path="big.csv", size_bytes=self.size_bytes
        )
        yield pb.ValidateSubmissionRequest(header=header)
        while self.sent < self.body_bytes:
            if self.sent >= self.stall_after:
                await self.release.wait()
            self.sent += len(_CHUNK)
            yield pb.ValidateSubmissionRequest(chunk=_CHUNK)


def _details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, list[str]]:
    status = rpc_status.from_call(error)
    assert status is not None, error.details()
    info = error_details_pb2.ErrorInfo()
    quota = error_details_pb2.QuotaFailure()
    subjects: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            detail.Unpack(quota)
            subjects = [v.subject for v in quota.violations]
    return info, subjects


@pytest.fixture
async def grader(serve, stack):
    definition = grader_service(stack.settings)
    server = await serve([definition], stack.settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield grader_service_pb2_grpc.GraderServiceStub(channel), definition.servicer.core
    await channel.close()


def _sandbox(authority, sandbox_id: str) -> tuple[tuple[str, str], ...]:
    return bearer(
        authority.issue(
            Role.SANDBOX, f"sandbox:{sandbox_id}", sandbox_id=sandbox_id, competition_id=COMPETITION
        )
    )


async def _refused(stub, upload: Upload, metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(
            stub.ValidateSubmission(upload(), metadata=metadata), _ATTACK_TIMEOUT_S
        )
    upload.release.set()
    return err.value


async def test_a_huge_sandbox_upload_is_cut_off_at_the_sandbox_cap(grader, authority):
    stub, _core = grader
    upload = Upload()
    error = await _refused(stub, upload, _sandbox(authority, "huge"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info, subjects = _details(error)
    assert info.reason == "SUBMISSION_TOO_LARGE"
    cap = SandboxUploadPolicy().min_bytes
    assert info.metadata["limit_bytes"] == str(cap)
    assert subjects == ["sandbox:huge:submission_bytes"]
    # The stream was never drained: the server stopped reading at the cap.
    assert upload.sent < READ_BOUND, upload.sent


async def test_a_declared_oversize_upload_is_refused_before_any_chunk(grader, authority):
    stub, _core = grader
    upload = Upload(size_bytes=3 * 1024**3 // 2, stall_after=0)
    error = await _refused(stub, upload, _sandbox(authority, "declared"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info, _subjects = _details(error)
    assert (info.reason, info.metadata["received_bytes"]) == (
        "SUBMISSION_TOO_LARGE",
        str(3 * 1024**3 // 2),
    )
    assert upload.sent <= MIB


async def test_concurrent_validations_from_one_sandbox_are_refused(grader, authority):
    stub, core = grader
    meta = _sandbox(authority, "twice")
    holding = Upload(body_bytes=0, stall_after=0)

    async def held_upload():
        async for message in holding():
            yield message
        await holding.release.wait()  # keeps the first call's body open
        yield pb.ValidateSubmissionRequest(chunk=submission_csv())

    first = asyncio.ensure_future(stub.ValidateSubmission(held_upload(), metadata=meta))
    for _ in range(200):
        if core.validations_in_flight:
            break
        await asyncio.sleep(0.02)
    try:
        second = Upload(stall_after=0)
        error = await _refused(stub, second, meta)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        info, subjects = _details(error)
        assert info.reason == "VALIDATION_IN_FLIGHT"
        assert subjects == ["sandbox:twice"] and second.sent <= MIB
        # Another sandbox is not held up by this one.
        other = await stub.ValidateSubmission(
            iter(
                [
                    pb.ValidateSubmissionRequest(
                        header=pb.SubmissionHeader(competition_id=COMPETITION)
                    ),
                    pb.ValidateSubmissionRequest(chunk=submission_csv()),
                ]
            ),
            metadata=_sandbox(authority, "other"),
        )
        assert other.valid
    finally:
        holding.release.set()
    # The first one finishes, and frees its slot.
    reply = await asyncio.wait_for(first, _ATTACK_TIMEOUT_S)
    assert reply.message  # validity aside, it was graded
    assert core.validations_in_flight == 0


async def test_the_rate_limit_is_decided_before_the_body(serve, stack, authority):
    limited = dataclasses.replace(stack.settings, validate_burst=1, validate_rate_per_s=0.001)
    server = await serve([grader_service(limited)], limited)
    meta = _sandbox(authority, "limited")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        ok = await stub.ValidateSubmission(
            iter(
                [
                    pb.ValidateSubmissionRequest(
                        header=pb.SubmissionHeader(competition_id=COMPETITION)
                    ),
                    pb.ValidateSubmissionRequest(chunk=submission_csv()),
                ]
            ),
            metadata=meta,
        )
        assert ok.valid
        upload = Upload(stall_after=0)
        error = await _refused(stub, upload, meta)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info, _subjects = _details(error)
    assert info.reason == "VALIDATION_RATE_LIMITED" and upload.sent <= MIB


async def test_labs_keep_the_full_submission_cap(grader, lab_token):
    stub, _core = grader
    # 8 MiB really sent: blank lines pad a valid submission, and the header must say so.
    body = submission_csv()
    body += b"\n" * (8 * MIB - len(body))
    reply = await stub.ValidateSubmission(
        iter(
            [
                pb.ValidateSubmissionRequest(
                    header=pb.SubmissionHeader(competition_id=COMPETITION, size_bytes=len(body))
                ),
                *(
                    pb.ValidateSubmissionRequest(chunk=body[i : i + MIB])
                    for i in range(0, len(body), MIB)
                ),
            ]
        ),
        metadata=bearer(lab_token),
    )
    assert reply.valid, reply.message
