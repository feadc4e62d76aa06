"""Submission checks shared by several competition specs.

Each check raises InvalidSubmission with a message that may quote the submission, never the
answers. Keep these faithful to what MLE-bench's graders reject; docs/grading.md lists where
mleb deliberately differs.
"""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import InvalidSubmission


def require_columns(submission: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in submission.columns]
    if missing:
        raise InvalidSubmission(f"Submission is missing required column(s): {missing}.")


def require_same_length(submission: pd.DataFrame, answers: pd.DataFrame) -> None:
    if len(submission) != len(answers):
        raise InvalidSubmission(
            f"Submission has {len(submission)} rows, but {len(answers)} are expected."
        )
