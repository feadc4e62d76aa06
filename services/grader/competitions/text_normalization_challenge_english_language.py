"""Text Normalization Challenge (English): share of tokens whose `after` text is exactly right.

Rows pair on `id` ("<sentence>_<token>"); both sides compare as text, as MLE-bench does.
"""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="text-normalization-challenge-english-language",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="id", target_column="after", as_text=True),
)
