"""TensorFlow Speech Recognition: accuracy of `label`, rows paired on `fname`."""

from functools import partial

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import accuracy_by_id

SPEC = CompetitionSpec(
    id="tensorflow-speech-recognition-challenge",
    lower_is_better=False,
    grade=partial(accuracy_by_id, id_column="fname", target_column="label"),
)
