"""Tweet Sentiment Extraction: mean word-level Jaccard index between predicted and true
`selected_text` (higher is better). Answers: `textID`, `text`, `selected_text`, `sentiment`."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.word_overlap import mean_word_jaccard


def _as_text(values: pd.Series) -> pd.Series:
    return values.fillna("").astype(str)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["textID", "selected_text"])
    sub, ans = align_on_ids(submission, answers, "textID")
    try:
        return mean_word_jaccard(_as_text(ans["selected_text"]), _as_text(sub["selected_text"]))
    except ZeroDivisionError as exc:
        # The competition's Jaccard divides by zero on two empty texts, failing the submission.
        raise InvalidSubmission(
            "The Jaccard score is undefined for a row whose predicted selected_text is empty "
            "and whose expected text is empty too; predict at least one word in every row."
        ) from exc


SPEC = CompetitionSpec(id="tweet-sentiment-extraction", lower_is_better=False, grade=grade)
