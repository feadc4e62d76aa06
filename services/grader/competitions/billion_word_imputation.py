"""Billion Word Imputation: mean Levenshtein distance between the restored and true sentences
(lower is better). Answers: `id` (int), `sentence` (the original sentence)."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, Score
from services.grader.competitions.checks import align_on_ids, require_columns, require_text
from services.grader.metrics.edit_distance import mean_levenshtein


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["id", "sentence"])
    sub, ans = align_on_ids(submission, answers, "id")
    # MLE-bench passes the cells to Levenshtein as they are: an empty cell (NaN) fails there.
    require_text(sub, "sentence", allow_missing=False)
    return mean_levenshtein(ans["sentence"].tolist(), sub["sentence"].tolist())


SPEC = CompetitionSpec(id="billion-word-imputation", lower_is_better=True, grade=grade)
