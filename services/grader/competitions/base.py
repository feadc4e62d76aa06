"""The contract every per-competition grading spec fulfils."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd


class InvalidSubmission(Exception):
    """The submission cannot be graded.

    The message is shown to agents, so it may quote the submission but never the answers.
    """


AnswersFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class CompetitionSpec:
    """How one competition is graded.

    `grade` takes the submission as read by `read_submission_csv` and the answers as read by
    `read_answers`, and returns the raw (unrounded) metric value, or raises InvalidSubmission.
    """

    id: str
    grade: Callable[[pd.DataFrame, Any], float]
    # The metric's direction, declared rather than inferred: MLE-bench infers it from the
    # leaderboard's first and last rows, which a plain clone holds only as Git LFS pointers.
    # Imports check it against the leaderboard when there is one.
    lower_is_better: bool
    answers_format: AnswersFormat = "csv"
    # Bump when a change to this spec could change any score; reports carry it as provenance.
    version: int = 1
