"""Tabular Playground Series Dec 2021: accuracy of `Cover_Type`, rows paired on `Id`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="tabular-playground-series-dec-2021",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="Id", target_column="Cover_Type"),
)
