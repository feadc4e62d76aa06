"""ML2021Spring HW2: accuracy of `ClassId`, rows paired on `Id`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="ml2021spring-hw2",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="Id", target_column="ClassId"),
)
