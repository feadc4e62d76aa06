"""GraderService through real registry and grader servers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.client import AsyncClient
from mleb.errors import ResourceExhausted
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.auth import Role
from tests.conftest import bearer
from tests.fixtures.grading_stack import (
    COMPETITION,
    IDS,
    MARKER,
    TRUTH,
    submission_csv,
)


def _requests(kind, data: bytes, *, competition_id=COMPETITION, chunk=7, path="sub.csv"):
    header = pb.SubmissionHeader(competition_id=competition_id, submission_path=path)
    messages = [kind(header=header)]
    messages += [kind(chunk=data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return iter(messages)


@pytest.fixture
async def grader(stack, channel_to):
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stack.grader_port}")
    yield grader_service_pb2_grpc.GraderServiceStub(channel)
    await channel.close()


def _flip(n: int) -> list[bool]:
    return [not t if i < n else t for i, t in enumerate(TRUTH)]


async def test_score_and_grade_match_the_metric_and_medal_rules(grader, lab_token):
    meta = bearer(lab_token)
    # 2 of 40 wrong: accuracy 0.95, exactly the gold threshold (inclusive).
    data = submission_csv(_flip(2))
    score = await grader.ScoreSubmission(_requests(pb.ScoreSubmissionRequest, data), metadata=meta)
    assert score.valid and score.score == 0.95 and score.grader_spec_version >= 1
    graded = await grader.GradeSubmission(_requests(pb.GradeSubmissionRequest, data), metadata=meta)
    report = graded.report
    assert (report.score, report.gold_medal, report.silver_medal) == (0.95, True, False)
    assert report.any_medal and report.above_median and not report.is_lower_better
    assert (report.gold_threshold, report.silver_threshold, report.bronze_threshold) == (
        0.95,
        0.85,
        0.65,
    )
    assert report.submission_path == "sub.csv" and report.bundle_digest
    ranked = await grader.RankScore(
        pb.RankScoreRequest(competition_id=COMPETITION, score=0.99), metadata=meta
    )
    assert ranked.ranking.gold_medal and ranked.ranking.leaderboard_size == 20
    unscored = await grader.RankScore(
        pb.RankScoreRequest(competition_id=COMPETITION), metadata=meta
    )
    assert not unscored.ranking.any_medal and not unscored.ranking.above_median


async def test_validation_never_reveals_a_score_or_the_answers(grader, authority):
    token = authority.issue(Role.SANDBOX, "agent", sandbox_id="s1", competition_id=COMPETITION)
    meta = bearer(token)
    valid = await grader.ValidateSubmission(
        _requests(pb.ValidateSubmissionRequest, submission_csv(_flip(7))), metadata=meta
    )
    assert valid.valid and valid.message == "Submission is valid." and not valid.reason
    assert "0.8" not in str(valid)  # 33/40 = 0.825 must not show up anywhere
    bad_variants = [
        submission_csv(ids=[f"x{i}" for i in range(40)]),  # wrong ids
        submission_csv()[: len(submission_csv()) // 2],  # fewer rows
        b"PassengerId\n" + "\n".join(IDS).encode(),  # missing column
        b"\x00\x01\x02garbage",
        b"",
    ]
    for data in bad_variants:
        reply = await grader.ValidateSubmission(
            _requests(pb.ValidateSubmissionRequest, data), metadata=meta
        )
        assert not reply.valid and reply.message.startswith("Submission invalid! ")
        assert MARKER not in reply.message + reply.reason or MARKER in data.decode(errors="replace")


async def test_oversize_uploads_are_resource_exhausted_with_the_limit(serve, stack, lab_token):
    from services.grader.app import grader_service
    from tests.fixtures.grading_stack import Settings

    small = Settings(**{**stack.settings.__dict__, "max_submission_bytes": 100})
    server = await serve([grader_service(small)], small)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ScoreSubmission(
                _requests(pb.ScoreSubmissionRequest, submission_csv()), metadata=bearer(lab_token)
            )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = {d.type_url.rsplit("/", 1)[-1]: d for d in rpc_status.from_call(err.value).details}
    info = error_details_pb2.ErrorInfo()
    details["google.rpc.ErrorInfo"].Unpack(info)
    assert info.metadata["limit_bytes"] == "100"
    assert "google.rpc.QuotaFailure" in details


async def test_bad_requests_get_clear_statuses(grader, lab_token):
    meta = bearer(lab_token)
    cases = [
        (iter([pb.ScoreSubmissionRequest(chunk=b"id\n1\n")]), grpc.StatusCode.INVALID_ARGUMENT),
        (iter([]), grpc.StatusCode.INVALID_ARGUMENT),
        (
            _requests(pb.ScoreSubmissionRequest, b"a\n1\n", competition_id="no-such-comp"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            iter(
                [pb.ScoreSubmissionRequest(header=pb.SubmissionHeader(competition_id=COMPETITION))]
                * 2
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for requests, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await grader.ScoreSubmission(requests, metadata=meta)
        assert err.value.code() == code, err.value.details()


async def test_sandbox_validation_is_rate_limited_per_sandbox(serve, stack, authority):
    from services.grader.app import grader_service
    from tests.fixtures.grading_stack import Settings

    limited = Settings(
        **{**stack.settings.__dict__, "validate_burst": 2, "validate_rate_per_s": 0.01}
    )
    server = await serve([grader_service(limited)], limited)
    token = authority.issue(Role.SANDBOX, "a", sandbox_id="s9", competition_id=COMPETITION)
    # Through the client: it keeps the grader's status when a refusal ends the upload early.
    async with AsyncClient(grader=f"127.0.0.1:{server.port}", token=token) as agent:
        for _ in range(2):
            assert (await agent.validate_submission(COMPETITION, submission_csv())).valid
        with pytest.raises(ResourceExhausted) as err:
            await agent.validate_submission(COMPETITION, submission_csv())
    assert err.value.reason == "VALIDATION_RATE_LIMITED"


async def test_concurrent_grading_is_consistent(grader, lab_token):
    data = [submission_csv(_flip(n)) for n in range(8)]
    replies = await asyncio.gather(
        *(
            grader.ScoreSubmission(
                _requests(pb.ScoreSubmissionRequest, d, chunk=64), metadata=bearer(lab_token)
            )
            for d in data * 4
        )
    )
    assert [r.score for r in replies] == [round(1 - n / 40, 5) for n in range(8)] * 4


async def test_the_grading_statement_names_the_sha256_of_the_uploaded_bytes(grader, lab_token):
    data = submission_csv(_flip(3))
    graded = await grader.GradeSubmission(
        _requests(pb.GradeSubmissionRequest, data, path="runs/sub.csv"), metadata=bearer(lab_token)
    )
    statement = json.loads(base64.b64decode(json.loads(graded.statement)["payload"]))
    assert statement["subject"] == [
        {"name": "runs/sub.csv", "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
    ]
    record = statement["predicate"]["audit_record"]
    assert record["seq"] > 0 and len(record["hash"]) == 64
