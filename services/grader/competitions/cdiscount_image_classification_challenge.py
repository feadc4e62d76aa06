"""Cdiscount Image Classification: accuracy of `category_id`, rows paired on `_id`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="cdiscount-image-classification-challenge",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="_id", target_column="category_id"),
)
