"""iWildCam 2020: accuracy of `Category`, rows paired on `Id`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="iwildcam-2020-fgvc7",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="Id", target_column="Category"),
)
