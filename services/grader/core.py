"""GraderCore: validate, score, grade and rank. Plain Python; the servicer is a thin shell."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd
import structlog
from mleb.ranking import LeaderboardState, Ranking, leaderboard_note, rank_score
from mleb.reports import NO_SUBMISSION, CompetitionReport

from services.common.abandonable import run_abandonable
from services.common.auth import Caller, Role
from services.grader.bundles import BundleProvider, GradingBundle
from services.grader.competitions import get_spec
from services.grader.rate_limit import TokenBucketLimiter
from services.grader.reading import Source
from services.grader.scoring import ScoreOutcome, score_source
from services.grader.uploads import (
    DEFAULT_MAX_SUBMISSION_BYTES,
    SANDBOX_SPOOL_BYTES,
    InFlightValidations,
    SandboxUploadPolicy,
    too_large,
)

log = structlog.get_logger("mleb.grader")


@dataclasses.dataclass(frozen=True)
class Admission:
    """How much of one upload the servicer may read, decided before reading any of it; and
    the competition's bundle, fetched while the body streams in."""

    bundle: asyncio.Future[GradingBundle]
    max_bytes: int
    spool_bytes: int = 64 * 1024**2
    subject: str = "submission_bytes"


def _private_copy(answers: Any) -> Any:
    """Cached answers are shared by concurrent calls; a spec must never see another's edits.

    Frames are shallow copies, which copy-on-write (see services/grader/__init__.py) turns
    into private ones on the first write.
    """
    if isinstance(answers, pd.DataFrame):
        return answers.copy(deep=False)
    return copy.deepcopy(answers)


class GraderCore:
    def __init__(
        self,
        bundles: BundleProvider,
        *,
        validate_limiter: TokenBucketLimiter | None = None,
        max_parallel: int | None = None,
        max_submission_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES,
        sandbox_uploads: SandboxUploadPolicy | None = None,
    ) -> None:
        self._bundles = bundles
        self._validate_limiter = validate_limiter
        self._max_bytes = max_submission_bytes
        self._sandbox_uploads = sandbox_uploads or SandboxUploadPolicy(
            max_bytes=min(SandboxUploadPolicy().max_bytes, max_submission_bytes)
        )
        self._in_flight = InFlightValidations()
        # Grading is CPU-bound; more threads than cores only adds contention and memory.
        self._slots = asyncio.Semaphore(max_parallel or os.cpu_count() or 1)

    async def _score(self, bundle: GradingBundle, submission: Source) -> ScoreOutcome:
        # The slot is held until the work ends, even when the caller has gone: abandoned
        # grades still use a core, so they must not make room for more.
        await self._slots.acquire()

        def done() -> None:
            self._slots.release()
            try:
                self._bundles.used(bundle)
            except Exception:  # bookkeeping: the grade's result must still reach its caller
                log.exception("bundle_bookkeeping_failed", competition_id=bundle.competition_id)

        return await run_abandonable(
            lambda: score_source(bundle.spec, submission, _private_copy(bundle.answers)),
            on_done=done,
            name=f"grade-{bundle.spec.id}",
        )

    @contextlib.asynccontextmanager
    async def admit_upload(
        self, caller: Caller, competition_id: str, declared_bytes: int = 0
    ) -> AsyncIterator[Admission]:
        """Decides from the header alone whether an upload may be read, and how much of it.

        A sandbox holds its one in-flight slot until the reply (so it cannot stack uploads,
        and its rate limit cannot refill while one streams), spends a rate-limit token before
        a byte of the body is read, and gets a cap sized to the competition's answers. For
        anyone else the bundle is fetched while the body arrives; a failed fetch is raised
        by whoever awaits it, after the body.
        """
        if caller.role is not Role.SANDBOX:
            if declared_bytes > self._max_bytes:
                raise too_large(self._max_bytes, declared_bytes)
            ahead = asyncio.ensure_future(self._bundles.get(competition_id))
            try:
                yield Admission(ahead, self._max_bytes)
            finally:
                ahead.cancel()  # nothing when it is done
                if ahead.done() and not ahead.cancelled():
                    ahead.exception()  # seen, so never logged as lost
            return
        subject = f"sandbox:{caller.sandbox_id}:submission_bytes"
        with self._in_flight.claim(caller.sandbox_id):
            if self._validate_limiter is not None:
                self._validate_limiter.acquire(caller.sandbox_id)
            bundle = await self._bundles.get(competition_id)
            cap = self._sandbox_uploads.cap_for(bundle.answers_size_bytes)
            if declared_bytes > cap:
                raise too_large(cap, declared_bytes, subject=subject)
            fetched = asyncio.get_running_loop().create_future()
            fetched.set_result(bundle)
            yield Admission(fetched, cap, SANDBOX_SPOOL_BYTES, subject)

    @property
    def validations_in_flight(self) -> int:
        return len(self._in_flight)

    async def validate(
        self, competition_id: str, submission: Source, bundle: GradingBundle | None = None
    ) -> ScoreOutcome:
        """Grades to decide validity; callers must only ever see `validation_message()`.

        Limits were applied by `admit_upload` before the submission was read. `bundle`,
        where given, is the competition's, as `admit_upload` fetched it."""
        bundle = bundle or await self._bundles.get(competition_id)
        return await self._score(bundle, submission)

    async def score(
        self, competition_id: str, submission: Source, bundle: GradingBundle | None = None
    ) -> tuple[ScoreOutcome, int]:
        bundle = bundle or await self._bundles.get(competition_id)
        return await self._score(bundle, submission), bundle.spec.version

    async def grade(
        self,
        competition_id: str,
        submission: Source | None,
        submission_path: str,
        *,
        no_submission: str = NO_SUBMISSION,
        bundle: GradingBundle | None = None,
    ) -> CompetitionReport:
        """An MLE-bench competition report; `submission=None` means no gradable submission
        exists, for the reason `no_submission` gives."""
        bundle = bundle or await self._bundles.get(competition_id)
        if submission is None:
            outcome = ScoreOutcome(None, no_submission)
        else:
            outcome = await self._score(bundle, submission)
        # The spec's declared direction: never inferred from a leaderboard, which may be
        # missing (an LFS pointer in a plain clone of MLE-bench).
        ranking = rank_score(
            outcome.score,
            bundle.leaderboard_scores or [],
            lower_is_better=bundle.spec.lower_is_better,
        )
        state = (
            bundle.leaderboard_state if ranking.leaderboard_size == 0 else LeaderboardState.PRESENT
        )
        return CompetitionReport(
            competition_id=competition_id,
            score=outcome.score,
            gold_threshold=ranking.gold_threshold,
            silver_threshold=ranking.silver_threshold,
            bronze_threshold=ranking.bronze_threshold,
            median_threshold=ranking.median_threshold,
            any_medal=ranking.any_medal,
            gold_medal=ranking.gold_medal,
            silver_medal=ranking.silver_medal,
            bronze_medal=ranking.bronze_medal,
            above_median=ranking.above_median,
            submission_exists=submission is not None,
            valid_submission=outcome.valid,
            is_lower_better=ranking.is_lower_better,
            submission_path=submission_path,
            error=outcome.error,
            awards_medals=bundle.awards_medals,
            grader_spec_version=bundle.spec.version,
            bundle_digest=bundle.digest,
            leaderboard_state=state.value,
            leaderboard_note=leaderboard_note(state),
        )

    async def rank(self, competition_id: str, score: float | None) -> tuple[Ranking, bool]:
        """The ranking of `score`, and whether Kaggle awarded medals in this competition."""
        info = await self._bundles.leaderboard(competition_id)
        spec = get_spec(competition_id)
        # A hand-written spec declares the direction; a metric-named competition's was
        # checked against its metric and leaderboard when the registry imported it.
        lower = spec.lower_is_better if spec is not None else info.lower_is_better
        ranking = rank_score(score, info.scores or [], lower_is_better=lower)
        if ranking.leaderboard_size == 0 and info.leaderboard_state is not None:
            ranking = dataclasses.replace(ranking, leaderboard_state=info.leaderboard_state)
        return ranking, info.awards_medals
