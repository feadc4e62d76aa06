"""OSIC pulmonary fibrosis: modified Laplace log likelihood of FVC with a Confidence (sigma),
scored on each patient's last three measured weeks; rows paired by Patient_Week."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import _examples, require_columns
from services.grader.metrics.regression import laplace_log_likelihood

KEY = "Patient_Week"


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, [KEY, "FVC", "Confidence"])
    _require_all_patient_weeks(submission, answers)
    for column in ("FVC", "Confidence"):
        if not pd.api.types.is_numeric_dtype(submission[column]):
            raise InvalidSubmission(f"Submission column {column!r} must be numeric.")
    scored = _last_three_measured_weeks(answers).sort_values(KEY)
    predicted = submission.set_index(KEY).loc[scored[KEY]]
    return laplace_log_likelihood(
        scored["FVC"].to_numpy(),
        predicted["FVC"].to_numpy(dtype=float),
        predicted["Confidence"].fillna(0).to_numpy(dtype=float),  # missing sigma -> the floor
    )


def _require_all_patient_weeks(submission: pd.DataFrame, answers: pd.DataFrame) -> None:
    keys = submission[KEY]
    unknown = keys[~keys.isin(answers[KEY])]
    if len(unknown):
        raise InvalidSubmission(
            f"Submission has {len(unknown)} unknown {KEY} value(s), e.g. {_examples(unknown)}."
        )
    repeated = keys[keys.duplicated()]
    if len(repeated):
        raise InvalidSubmission(
            f"Submission repeats {len(repeated)} {KEY} value(s), e.g. {_examples(repeated)}."
        )
    missing = int((~answers[KEY].isin(keys)).sum())
    if missing:
        raise InvalidSubmission(f"Submission is missing {missing} of the expected {KEY} rows.")


def _last_three_measured_weeks(answers: pd.DataFrame) -> pd.DataFrame:
    """Rows with a measured FVC, keeping each patient's three latest weeks."""
    measured = answers.dropna(subset=["FVC"])
    week = measured[KEY].str.rsplit("_", n=1).str[-1].astype(int)
    latest = week.groupby(measured["Patient"]).rank(method="first", ascending=False) <= 3
    return measured[latest]


SPEC = CompetitionSpec(id="osic-pulmonary-fibrosis-progression", lower_is_better=False, grade=grade)
