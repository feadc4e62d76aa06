"""OpenVaccine (Stanford COVID vaccine): mean column-wise RMSE over three degradation targets.

Answers hold one row per `id_seqpos` with all five targets and a boolean `keep` marking the
scored positions. The submission needs all five target columns, but only reactivity,
deg_Mg_pH10 and deg_Mg_50C on kept rows are scored; rows pair on `id_seqpos`.
"""

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    rejected_by_metric,
    require_columns,
    require_same_length,
)
from services.grader.metrics.regression import rmse

SCORED = ["reactivity", "deg_Mg_pH10", "deg_Mg_50C"]
REQUIRED = ["id_seqpos", *SCORED, "deg_pH10", "deg_50C"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_columns(submission, REQUIRED)
    submission, answers = align_on_ids(submission, answers, "id_seqpos")
    scored = answers["keep"].to_numpy(dtype=bool)
    errors = []
    for column in SCORED:
        with rejected_by_metric(
            f"Submission column {column!r} must hold finite numbers in every scored row."
        ):
            errors.append(
                rmse(answers[column].to_numpy()[scored], submission[column].to_numpy()[scored])
            )
    return float(np.mean(errors))


SPEC = CompetitionSpec(
    id="stanford-covid-vaccine", lower_is_better=True, grade=grade, version=2, float64_score=True
)
