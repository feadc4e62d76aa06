"""The grading core: MLE-bench's score semantics, validation secrecy, caps and limits."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import tracemalloc
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from mleb.reports import aggregate_reports

from services.common.auth import Caller, Role
from services.common.errors import NotFoundError, ResourceExhaustedError
from services.grader.bundles import LocalBundleProvider, bundle_digest
from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.core import GraderCore
from services.grader.rate_limit import TokenBucketLimiter
from services.grader.reading import read_answers, read_submission
from services.grader.scoring import score_frame, score_source
from services.grader.uploads import SubmissionBuffer

MARKER = "SECRET-ANSWER-MARKER-7f3a"


def _spec(grade) -> CompetitionSpec:
    return CompetitionSpec(id="toy", lower_is_better=False, grade=grade)


def test_scores_round_to_five_decimals_on_the_metric_type():
    assert score_frame(_spec(lambda s, a: 0.1234567), None, None).score == 0.12346
    # numpy's round differs from Python's on ties; the reference rounds the metric's own type.
    assert score_frame(_spec(lambda s, a: np.float64(2.675e-5)), None, None).score == round(
        np.float64(2.675e-5), 5
    )


def test_invalid_submission_means_no_score_with_its_reason():
    def grade(submission, answers):
        raise InvalidSubmission("Submission is missing column 'y'.")

    outcome = score_frame(_spec(grade), None, None)
    assert outcome.score is None and not outcome.valid
    # mlebench/grade.py's validate_submission, word for word.
    assert outcome.validation_message() == (
        "Submission invalid! The attempt to grade the submission has resulted in the following "
        "error message:\nSubmission is missing column 'y'."
    )


def test_unexpected_errors_give_no_score_and_never_leak_their_text():
    def grade(submission, answers):
        raise KeyError(f"{MARKER} not in index")

    outcome = score_frame(_spec(grade), None, None)
    assert outcome.score is None
    assert MARKER not in outcome.error and "KeyError" in outcome.error


def test_valid_message_is_mlebench_wording_and_hides_the_score():
    outcome = score_frame(_spec(lambda s, a: 0.987654), None, None)
    assert outcome.validation_message() == "Submission is valid."
    assert "0.98" not in outcome.validation_message()


@pytest.mark.parametrize(
    "payload",
    [b"\x00\xff\xfe\x00binary\n\xff", b'a,b\n1,"unterminated\n', "\u00e9\n1\n".encode("utf-16")],
)
def test_unreadable_submissions_are_invalid_never_raise(payload):
    outcome = score_source(_spec(lambda s, a: float(len(s))), io.BytesIO(payload), None)
    assert outcome.score is None
    assert outcome.error.startswith("Submission is not a readable CSV file")


def test_empty_submission_reads_as_empty_frame():
    assert read_submission(io.BytesIO(b"")).empty


def test_garbage_submission_is_invalid_with_a_parse_message():
    with pytest.raises(InvalidSubmission, match="not a readable CSV"):
        read_submission(io.BytesIO(b'a,b\n1,"never closed\n2,3'))


def test_jsonl_answers_parse_to_dicts():
    assert read_answers(b'{"a": 1}\n\n{"a": 2}\n', "jsonl") == [{"a": 1}, {"a": 2}]


def test_upload_cap_is_resource_exhausted_with_the_limit():
    buffer = SubmissionBuffer(max_bytes=10)
    buffer.write(b"12345")
    with pytest.raises(ResourceExhaustedError) as err:
        buffer.write(b"678901")
    assert err.value.metadata["limit_bytes"] == "10"
    assert err.value.quota[0].subject == "submission_bytes"
    with pytest.raises(ResourceExhaustedError):
        SubmissionBuffer(max_bytes=10).check_declared_size(11)


@pytest.mark.parametrize("spool_bytes", [1 << 20, 64, 7, 1])
async def test_a_body_reads_back_and_hashes_the_same_in_memory_or_spilled(spool_bytes):
    body = bytes(range(256)) * 40
    with SubmissionBuffer(max_bytes=len(body), spool_bytes=spool_bytes) as buffer:
        for start in range(0, len(body), 333):
            buffer.write(body[start : start + 333])
        assert buffer.size == len(body)
        assert await buffer.sha256() == hashlib.sha256(body).hexdigest()
        assert (await buffer.file()).read() == body
        assert (await buffer.file()).read() == body  # each file() starts at the beginning
        assert await buffer.sha256() == hashlib.sha256(body).hexdigest()


async def test_the_body_is_joined_once_off_the_loop_and_a_waiter_that_leaves_harms_none():
    body = b"id,p\n" + b"1,0.5\n" * 100_000
    loop_thread = threading.get_ident()
    joined_on: list[int] = []

    def join(chunks):
        joined_on.append(threading.get_ident())
        return b"".join(chunks)

    with SubmissionBuffer(max_bytes=2 * len(body)) as buffer:  # held in memory
        for start in range(0, len(body), 4096):
            buffer.write(body[start : start + 4096])
        with mock.patch("services.grader.uploads._join", join):
            leaving = asyncio.ensure_future(buffer.file())
            await asyncio.sleep(0)
            leaving.cancel()
            first, digest, second = await asyncio.gather(
                buffer.file(), buffer.sha256(), buffer.file()
            )
    assert first.read() == body and second.read() == body
    assert digest == hashlib.sha256(body).hexdigest()
    assert len(joined_on) == 1 and joined_on[0] != loop_thread


async def test_tiny_and_empty_chunks_spill_as_early_as_their_memory_says():
    """Each kept chunk costs its object's overhead too: 2-byte chunks must not hold 20x the
    spool in memory, and empty ones hold nothing at all."""
    spool = 64 * 1024
    with SubmissionBuffer(max_bytes=10**9, spool_bytes=spool) as buffer:
        for _ in range(1_000_000):
            buffer.write(b"")
        assert buffer.size == 0 and not buffer._chunks
        tracemalloc.start()
        try:
            for _ in range(200_000):
                buffer.write(b"ab")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * spool
        assert buffer.size == 400_000 and (await buffer.file()).read() == b"ab" * 200_000


def test_rate_limiter_refuses_after_burst_per_key():
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=2)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(ResourceExhaustedError) as err:
        limiter.acquire("a")
    assert float(err.value.metadata["retry_after_s"]) > 0
    limiter.acquire("b")  # another sandbox has its own bucket


def test_aggregate_report_totals():
    def report(**kw):
        from mleb.reports import CompetitionReport

        base = dict(
            competition_id="c", score=1.0, gold_threshold=1.0, silver_threshold=0.9,
            bronze_threshold=0.8, median_threshold=0.5, any_medal=False, gold_medal=False,
            silver_medal=False, bronze_medal=False, above_median=False,
            submission_exists=True, valid_submission=True, is_lower_better=False,
            submission_path="p.csv",
        )  # fmt: skip
        return CompetitionReport(**{**base, **kw})

    reports = [
        report(gold_medal=True, any_medal=True, above_median=True),
        report(bronze_medal=True, any_medal=True),
        report(score=None, valid_submission=False),
        report(score=None, valid_submission=False, submission_exists=False),
    ]
    summary = aggregate_reports(reports)
    assert {k: v for k, v in summary.items() if k != "competition_reports"} == {
        "total_runs": 4,
        "total_runs_with_submissions": 3,
        "total_valid_submissions": 2,
        "total_medals": 2,
        "total_gold_medals": 1,
        "total_silver_medals": 0,
        "total_bronze_medals": 1,
        "total_above_median": 1,
    }
    json.dumps(summary)  # the report is JSON-serialisable as written to disk


@pytest.fixture
def spaceship(tmp_path):
    answers = tmp_path / "test.csv"
    pd.DataFrame(
        {"PassengerId": ["0001_01", "0002_01", "0003_01", "0004_01"],
         "Transported": [True, False, True, True]}
    ).to_csv(answers, index=False)  # fmt: skip
    leaderboard = tmp_path / "leaderboard.csv"
    pd.DataFrame({"score": [1.0, 0.9, 0.8, 0.75, 0.5, 0.25]}).to_csv(leaderboard, index=False)
    return LocalBundleProvider("spaceship-titanic", answers, leaderboard)


def _csv(rows: dict) -> io.BytesIO:
    return io.BytesIO(pd.DataFrame(rows).to_csv(index=False).encode())


async def test_grade_ranks_against_the_leaderboard(spaceship):
    submission = _csv(
        {"PassengerId": ["0001_01", "0002_01", "0003_01", "0004_01"],
         "Transported": [True, False, True, False]}
    )  # fmt: skip
    report = await GraderCore(spaceship).grade("spaceship-titanic", submission, "sub.csv")
    assert report.score == 0.75
    # 6 teams: gold/silver/bronze at positions 1, 1, 2; median 0.775.
    assert (report.gold_threshold, report.bronze_threshold) == (1.0, 0.9)
    assert not report.any_medal and not report.above_median
    assert report.valid_submission and report.submission_exists
    assert report.bundle_digest == (await spaceship.get("spaceship-titanic")).digest


async def test_grade_without_a_submission_reports_it_missing(spaceship):
    report = await GraderCore(spaceship).grade("spaceship-titanic", None, "missing.csv")
    assert not report.submission_exists and report.score is None and report.error


async def test_sandbox_validation_is_rate_limited(spaceship):
    core = GraderCore(spaceship, validate_limiter=TokenBucketLimiter(0.001, 1))
    caller = Caller(Role.SANDBOX, "agent", sandbox_id="s1", competition_id="spaceship-titanic")
    async with core.admit_upload(caller, "spaceship-titanic") as admission:
        assert admission.bundle.done()  # the sandbox's cap needed it
        await core.validate("spaceship-titanic", _csv({"x": [1]}), await admission.bundle)
    with pytest.raises(ResourceExhaustedError):
        async with core.admit_upload(caller, "spaceship-titanic"):
            pass
    # Labs are not limited.
    async with core.admit_upload(Caller(Role.LAB, "lab"), "spaceship-titanic") as admission:
        await core.validate("spaceship-titanic", _csv({"x": [1]}), await admission.bundle)


async def test_a_labs_upload_fetches_the_bundle_while_the_body_streams(spaceship, caplog):
    core = GraderCore(spaceship)
    lab = Caller(Role.LAB, "lab")
    async with core.admit_upload(lab, "spaceship-titanic") as admission:
        assert not admission.bundle.done()  # started, not awaited: the body comes first
        bundle = await admission.bundle
    assert bundle is await spaceship.get("spaceship-titanic")
    # An unknown competition fails when the bundle is awaited, after the body.
    async with core.admit_upload(lab, "no-such-competition") as admission:
        with pytest.raises(NotFoundError):
            await admission.bundle
    # An upload that ends before anyone awaits it leaves nothing running or unretrieved.
    async with core.admit_upload(lab, "no-such-competition") as admission:
        await asyncio.sleep(0)
    async with core.admit_upload(lab, "spaceship-titanic") as pending:
        pass
    await asyncio.wait([pending.bundle], timeout=5)
    assert pending.bundle.cancelled()
    assert "exception was never retrieved" not in caplog.text


async def test_sandbox_upload_cap_follows_the_answers_size(spaceship):
    from services.grader.uploads import SandboxUploadPolicy

    policy = SandboxUploadPolicy(size_multiple=2, min_bytes=10, max_bytes=1000)
    assert (policy.cap_for(1), policy.cap_for(100), policy.cap_for(10**6)) == (10, 200, 1000)
    core = GraderCore(spaceship, sandbox_uploads=policy)
    caller = Caller(Role.SANDBOX, "agent", sandbox_id="s1", competition_id="spaceship-titanic")
    answers = (await spaceship.get("spaceship-titanic")).answers_size_bytes
    async with core.admit_upload(caller, "spaceship-titanic") as limit:
        assert limit.max_bytes == policy.cap_for(answers)
        # One in flight per sandbox: a second is refused while the first is held.
        with pytest.raises(ResourceExhaustedError) as err:
            async with core.admit_upload(caller, "spaceship-titanic"):
                pass
        assert err.value.reason == "VALIDATION_IN_FLIGHT"
    with pytest.raises(ResourceExhaustedError) as err:
        async with core.admit_upload(caller, "spaceship-titanic", declared_bytes=10**9):
            pass
    assert err.value.reason == "SUBMISSION_TOO_LARGE"


async def test_unknown_competition_is_not_found(spaceship):
    with pytest.raises(NotFoundError):
        await GraderCore(spaceship).score("no-such-competition", _csv({"x": [1]}))


async def test_specs_cannot_corrupt_cached_answers(tmp_path):
    """Concurrent calls share the cached answers; each spec gets a private copy."""
    from services.grader import competitions

    answers = tmp_path / "a.csv"
    pd.DataFrame({"id": [1, 2], "y": [0.0, 1.0]}).to_csv(answers, index=False)

    def vandal(submission, frame):
        frame["y"] = -1.0
        frame.drop(index=0, inplace=True)
        return 0.0

    competitions.all_specs()["vandal-test"] = CompetitionSpec(
        id="vandal-test", lower_is_better=False, grade=vandal
    )
    try:
        provider = LocalBundleProvider("vandal-test", answers)
        core = GraderCore(provider)
        await asyncio.gather(*(core.score("vandal-test", _csv({"id": [1]})) for _ in range(4)))
        cached = (await provider.get("vandal-test")).answers
        assert cached["y"].tolist() == [0.0, 1.0]
    finally:
        del competitions.all_specs()["vandal-test"]


def test_bundle_digest_covers_answers_and_leaderboard():
    assert bundle_digest(b"a", [1.0]) != bundle_digest(b"a", [2.0])
    assert bundle_digest(b"a", None) != bundle_digest(b"b", None)
    assert bundle_digest(b"a", [1.0]) == bundle_digest(b"a", [1.0])
