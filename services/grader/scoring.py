"""Turns a spec's grade function into MLE-bench's score semantics: rounded, or no score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import structlog

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.reading import Source, read_submission

log = structlog.get_logger("mleb.grader")

# MLE-bench's wording, exactly (mlebench/grade.py's validate_submission, which its grading
# server's /validate returns): agents written for MLE-bench match on these strings.
VALID_MESSAGE = "Submission is valid."
INVALID_PREFIX = (
    "Submission invalid! The attempt to grade the submission has resulted in the following "
    "error message:\n"
)


@dataclass(frozen=True)
class ScoreOutcome:
    score: float | None
    # Why there is no score; empty when there is one.
    error: str = ""

    @property
    def valid(self) -> bool:
        return self.score is not None

    def validation_message(self) -> str:
        """MLE-bench's wording, with no hint of the score."""
        return VALID_MESSAGE if self.valid else INVALID_PREFIX + self.error


def score_frame(spec: CompetitionSpec, submission: Any, answers: Any) -> ScoreOutcome:
    """Grades a parsed submission. Like the reference, any failure means no score."""
    try:
        raw = spec.grade(submission, answers)
    except InvalidSubmission as exc:
        return ScoreOutcome(None, str(exc))
    except Exception as exc:
        # The exception text may quote the answers, so only its type leaves this function.
        log.warning("grade_raised", competition_id=spec.id, error_type=type(exc).__name__)
        return ScoreOutcome(None, f"The submission could not be graded ({type(exc).__name__}).")
    # round() on the metric's own type, as the reference does (numpy and Python round differ);
    # the cast is for the type checker only.
    return ScoreOutcome(float(round(cast(float, raw), 5)))


def score_source(spec: CompetitionSpec, source: Source, answers: Any) -> ScoreOutcome:
    try:
        submission = read_submission(source, spec.arrow_text_columns)
    except InvalidSubmission as exc:
        return ScoreOutcome(None, str(exc))
    return score_frame(spec, submission, answers)
