"""What a built-in competition is, and its deterministic train/test split.

A competition's rows come from data shipped inside a PyPI package. Each row has a stable
`key` (its position in the packaged dataset, or its own content), and the split depends on
nothing but those keys: a row goes to the test set when the SHA-256 of its key ranks among
the lowest of its stratum. Ids are handed out in another key-hash order, so neither the ids
nor the row order reveal where a row came from.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

KEY = "key"


class Task(enum.StrEnum):
    """Decides the baselines that are run and what a submission holds."""

    BINARY_PROBABILITY = "binary-probability"
    REGRESSION = "regression"
    MULTICLASS = "multiclass"
    TEXT = "text"


@dataclass(frozen=True)
class Definition:
    id: str
    name: str
    metric: str
    lower_is_better: bool
    category: str
    task: Task
    id_column: str
    target_column: str
    test_fraction: float
    # The packaged rows: feature columns, the target column and KEY, in the package's order.
    rows: Callable[[], pd.DataFrame]
    # Where the data comes from, for the docs and the description.
    source: str
    stratify: bool = True
    first_id: int = 0


@dataclass(frozen=True)
class Prepared:
    """A split competition: train has features and target, test only features."""

    train: pd.DataFrame
    test: pd.DataFrame
    answers: pd.DataFrame
    sample_submission: pd.DataFrame


def _rank(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}\n{key}".encode()).hexdigest()


def prepare(definition: Definition) -> Prepared:
    rows = definition.rows()
    if rows[KEY].duplicated().any():
        raise ValueError(f"{definition.id}: row keys must be unique")
    split_rank = rows[KEY].map(lambda k: _rank(f"{definition.id}/split", k))
    strata = rows[definition.target_column] if definition.stratify else pd.Series(0, rows.index)
    in_test = pd.Series(False, index=rows.index)
    for _, ranks in split_rank.groupby(strata, sort=True):
        count = round(len(ranks) * definition.test_fraction)
        in_test[ranks.sort_values().index[:count]] = True

    order = rows[KEY].map(lambda k: _rank(f"{definition.id}/order", k)).sort_values().index
    shuffled = rows.loc[order].drop(columns=KEY)
    ids = pd.Series(range(definition.first_id, definition.first_id + len(rows)), index=order)
    shuffled.insert(0, definition.id_column, ids)
    test_rows = shuffled[in_test.loc[order].to_numpy()].reset_index(drop=True)
    train = shuffled[~in_test.loc[order].to_numpy()].reset_index(drop=True)
    target = definition.target_column
    answers = test_rows[[definition.id_column, target]]
    sample = answers.copy()
    sample[target] = _sample_value(definition, train[target])
    return Prepared(train, test_rows.drop(columns=target), answers, sample)


def _sample_value(definition: Definition, target: pd.Series):
    """A valid but uninformed prediction: 0.5, the mean, or the most frequent label."""
    if definition.task is Task.BINARY_PROBABILITY:
        return 0.5
    if definition.task is Task.REGRESSION:
        return round(float(target.mean()), 1)
    return target.value_counts().sort_index().idxmax()
