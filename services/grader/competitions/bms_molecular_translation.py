"""BMS Molecular Translation: mean Levenshtein distance between predicted and true InChI
strings (lower is better). Answers: `image_id`, `InChI`."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, Score
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.edit_distance import mean_levenshtein


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["image_id", "InChI"])
    sub, ans = align_on_ids(submission, answers, "image_id")
    # Every cell is compared as text, so an empty cell is the string "nan" (as in MLE-bench).
    return mean_levenshtein(ans["InChI"].astype(str).tolist(), sub["InChI"].astype(str).tolist())


SPEC = CompetitionSpec(id="bms-molecular-translation", lower_is_better=True, grade=grade)
