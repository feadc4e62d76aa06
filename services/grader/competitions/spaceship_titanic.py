"""Spaceship Titanic: accuracy of `Transported`, rows paired on `PassengerId`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="spaceship-titanic",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="PassengerId", target_column="Transported"),
    # Read only through align_on_ids (labels_by_id), so the reader may keep them as Arrow.
    arrow_text_columns=("PassengerId",),
)
