"""Cassava Leaf Disease Classification: accuracy of `label`, rows paired on `image_id`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="cassava-leaf-disease-classification",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="image_id", target_column="label"),
)
