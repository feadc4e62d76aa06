"""Statoil/C-CORE Iceberg Classifier: binary log loss of `is_iceberg`.

Rows pair on `id`; `is_iceberg` is the probability that the object is an iceberg.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import probability_auc_inputs
from services.grader.metrics.classification import log_loss


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    # The AUC preparation's checks (columns, row count, probabilities in [0, 1], exact ids)
    # are exactly this grader's.
    y_true, y_proba = probability_auc_inputs(submission, answers, "id", ["is_iceberg"])
    return log_loss(y_true[:, 0], y_proba[:, 0])


SPEC = CompetitionSpec(id="statoil-iceberg-classifier-challenge", lower_is_better=True, grade=grade)
