"""Movie Review Sentiment Analysis: accuracy of `Sentiment`, rows paired on `PhraseId`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="movie-review-sentiment-analysis-kernels-only",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="PhraseId", target_column="Sentiment"),
)
