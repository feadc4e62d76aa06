"""Bytes that do not decode answer INVALID_ARGUMENT on all three services (issue 16, item 2).

Hand-encoded frames over a raw channel (no serializers): garbage that is not protobuf, and
a string field holding invalid UTF-8. Once the grader answered INTERNAL and the sandbox
UNKNOWN with "Unexpected <class 'google.protobuf.message.DecodeError'>".
"""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import bearer

GARBAGE = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
# Field 1 (a string in each request below), length 2, bytes that are not UTF-8.
BAD_UTF8 = b"\x0a\x02\xff\xfe"
# ValidateSubmissionRequest.header (field 1) holding SubmissionHeader.competition_id = BAD_UTF8.
BAD_UTF8_HEADER = b"\x0a" + bytes([len(BAD_UTF8)]) + BAD_UTF8

UNARY = [
    ("registry", "/mleb.registry.v1.RegistryService/GetCompetition"),
    ("grader", "/mleb.grader.v1.GraderService/RankScore"),
    ("sandbox", "/mleb.sandbox.v1.SandboxService/CreateSandbox"),
    ("sandbox", "/mleb.sandbox.v1.SandboxService/GetSandbox"),
]
SERVER_STREAM = [
    ("registry", "/mleb.registry.v1.RegistryService/DownloadPublicData"),
    ("sandbox", "/mleb.sandbox.v1.SandboxService/StreamLogs"),
]
CLIENT_STREAM = [
    ("grader", "/mleb.grader.v1.GraderService/ValidateSubmission"),
    ("grader", "/mleb.grader.v1.GraderService/ScoreSubmission"),
]


def _check(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    details = error.details() or ""
    assert "could not be decoded" in details
    assert "<class" not in details and "DecodeError" not in details and "/" not in details


@pytest.fixture
async def ports(sandbox_stack, stack) -> dict[str, int]:
    server, _stub = await sandbox_stack.start()
    return {"registry": stack.registry_port, "grader": stack.grader_port, "sandbox": server.port}


@pytest.mark.parametrize("payload", [GARBAGE, BAD_UTF8], ids=["garbage", "bad-utf8"])
async def test_undecodable_requests_are_invalid_arguments(ports, lab_token, payload) -> None:
    metadata = bearer(lab_token)
    for service, method in UNARY + SERVER_STREAM + CLIENT_STREAM:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[service]}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                if (service, method) in UNARY:
                    await channel.unary_unary(method)(payload, metadata=metadata)
                elif (service, method) in SERVER_STREAM:
                    async for _ in channel.unary_stream(method)(payload, metadata=metadata):
                        pass
                else:
                    frame = payload if payload is GARBAGE else BAD_UTF8_HEADER
                    await channel.stream_unary(method)(iter([frame]), metadata=metadata)
            _check(err.value)
