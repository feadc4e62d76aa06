"""chaii Hindi and Tamil QA: mean word-level Jaccard index between predicted and true answer
texts, two empty texts scoring 0 (higher is better). Answers: `id`, `PredictionString`."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, require_columns, require_text
from services.grader.metrics.word_overlap import mean_word_jaccard


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "PredictionString"])
    sub, ans = align_on_ids(submission, answers, "id")
    # Empty cells are empty answers; other non-text cells fail str.lower() in MLE-bench.
    require_text(sub, "PredictionString", allow_missing=True)
    return mean_word_jaccard(
        ans["PredictionString"].fillna(""), sub["PredictionString"].fillna(""), both_empty=0.0
    )


SPEC = CompetitionSpec(
    id="chaii-hindi-and-tamil-question-answering",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
