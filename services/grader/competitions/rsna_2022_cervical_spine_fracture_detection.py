"""RSNA 2022 Cervical Spine Fracture Detection: weighted multi-label log loss per study.

Answers are long-format: `row_id` ("<StudyInstanceUID>_<target>") and a 0/1 `fractured`, for
the targets patient_overall and C1..C7. Each study's eight losses are averaged with the
competition's weights (patient_overall 7 if negative, 14 if positive; vertebrae 1 and 2).
"""

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    require_columns,
    require_probabilities,
)
from services.grader.metrics.classification import weighted_binary_log_loss

TARGETS = ["patient_overall", "C1", "C2", "C3", "C4", "C5", "C6", "C7"]
NEGATIVE_WEIGHTS = np.array([7, 1, 1, 1, 1, 1, 1, 1], dtype=np.float32)
POSITIVE_WEIGHTS = np.array([14, 2, 2, 2, 2, 2, 2, 2], dtype=np.float32)


def _one_row_per_study(long: pd.DataFrame) -> np.ndarray:
    """(studies sorted by uid, TARGETS) array of `fractured` from the long format."""
    study, target = long["row_id"].str.split("_", n=1, expand=True).T.to_numpy()
    wide = long.assign(study=study, target=target).pivot(
        index="study", columns="target", values="fractured"
    )
    return wide[TARGETS].to_numpy()


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["row_id", "fractured"])
    require_probabilities(submission, ["fractured"])
    submission, answers = align_on_ids(submission, answers, "row_id")
    return weighted_binary_log_loss(
        _one_row_per_study(answers),
        _one_row_per_study(submission),
        NEGATIVE_WEIGHTS,
        POSITIVE_WEIGHTS,
    )


SPEC = CompetitionSpec(
    id="rsna-2022-cervical-spine-fracture-detection",
    lower_is_better=True,
    grade=grade,
    version=2,
    float64_score=True,
)
