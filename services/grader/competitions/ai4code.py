"""Google AI4Code: Kendall tau between predicted and true cell orders, pooled over notebooks;
rows paired by id. Each row must list exactly its notebook's cell ids, space-separated."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import _examples, align_on_ids, require_columns
from services.grader.metrics.correlation import kendall_tau_of_orderings


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "cell_order"])
    sub, ans = align_on_ids(submission, answers, "id")
    predicted = _cells(sub)
    expected = _cells(ans)
    counts = _per_row(predicted, len(sub))
    wrong_count = counts.ne(_per_row(expected, len(ans)))
    if wrong_count.any():
        ids = sub["id"].iloc[wrong_count[wrong_count].index]
        raise InvalidSubmission(
            f"cell_order must list each of the notebook's cells exactly once; {len(ids)} row(s) "
            f"list a different number of cells, e.g. for id(s) {_examples(ids)}."
        )
    # Key every (row, cell id) pair by one integer, so pairing hashes rather than sorts text.
    codes, names = pd.factorize(np.concatenate([expected.to_numpy(), predicted.to_numpy()]))
    expected_keys = expected.index.to_numpy() * len(names) + codes[: len(expected)]
    predicted_keys = predicted.index.to_numpy() * len(names) + codes[len(expected) :]
    positions = pd.Index(expected_keys).get_indexer(predicted_keys)
    unknown = (positions < 0) | pd.Index(predicted_keys).duplicated()
    if unknown.any():
        raise InvalidSubmission(
            f"cell_order must list each of the notebook's cells exactly once; {int(unknown.sum())} "
            f"listed cell id(s) are unknown or repeated, e.g. "
            f"{_examples(pd.Series(predicted.to_numpy()[unknown]))}."
        )
    true_rank = expected.groupby(level=0).cumcount().to_numpy()
    return kendall_tau_of_orderings(true_rank[positions], counts.to_numpy())


def _cells(frame: pd.DataFrame) -> pd.Series:
    """One entry per listed cell id, indexed by the row's position, in listed order."""
    return frame["cell_order"].astype(str).str.split().explode().dropna()


def _per_row(cells: pd.Series, rows: int) -> pd.Series:
    return cells.groupby(level=0).size().reindex(range(rows), fill_value=0)


SPEC = CompetitionSpec(id="AI4Code", lower_is_better=False, grade=grade)
