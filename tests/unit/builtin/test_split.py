"""The deterministic split: stratified, keyed by row content only, ids that reveal nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from services.builtin.definition import KEY, Definition, Task, prepare


def _definition(rows: pd.DataFrame, task: Task = Task.MULTICLASS, **overrides) -> Definition:
    fields = dict(
        id="toy",
        name="Toy",
        metric="accuracy",
        lower_is_better=False,
        category="Tabular",
        task=task,
        id_column="id",
        target_column="y",
        test_fraction=0.25,
        rows=lambda: rows,
        source="a test",
    )
    return Definition(**{**fields, **overrides})


def _rows(count: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": range(count),
            "y": [i % 4 for i in range(count)],
            KEY: [f"r{i}" for i in range(count)],
        }
    )


def test_split_is_stratified_and_partitions_the_rows():
    prepared = prepare(_definition(_rows()))
    # 50 rows per class, a quarter of each (12.5, rounded half to even) in the test set.
    assert len(prepared.test) == 48 and len(prepared.train) == 152
    assert prepared.answers["y"].value_counts().to_dict() == {0: 12, 1: 12, 2: 12, 3: 12}
    assert sorted([*prepared.train["x"], *prepared.test["x"]]) == list(range(200))
    assert "y" not in prepared.test.columns
    ids = [*prepared.train["id"], *prepared.test["id"]]
    assert sorted(ids) == list(range(200))


def test_split_depends_on_row_keys_not_row_order():
    rows = _rows()
    first = prepare(_definition(rows))
    second = prepare(_definition(rows.sample(frac=1, random_state=7)))
    pd.testing.assert_frame_equal(first.train, second.train)
    pd.testing.assert_frame_equal(first.answers, second.answers)


def test_ids_are_shuffled_independently_of_the_source_order():
    prepared = prepare(_definition(_rows()))
    # The packaged order ran x = 0, 1, 2, ...; the ids must not follow it.
    assert prepared.train["x"].tolist() != sorted(prepared.train["x"])


def test_answers_and_sample_cover_exactly_the_test_ids():
    prepared = prepare(_definition(_rows(), first_id=1))
    assert prepared.answers["id"].tolist() == prepared.test["id"].tolist()
    assert prepared.sample_submission["id"].tolist() == prepared.test["id"].tolist()
    assert min(prepared.train["id"].min(), prepared.test["id"].min()) == 1


@pytest.mark.parametrize(
    ("task", "expected"),
    [(Task.BINARY_PROBABILITY, 0.5), (Task.REGRESSION, 1.5), (Task.MULTICLASS, 0)],
)
def test_sample_prediction_is_valid_but_uninformed(task, expected):
    rows = pd.DataFrame({"y": [0, 0, 1, 1, 0, 1, 2, 2] * 5, KEY: [f"r{i}" for i in range(40)]})
    rows["y"] = rows["y"] if task is not Task.BINARY_PROBABILITY else rows["y"].clip(0, 1)
    prepared = prepare(_definition(rows, task=task, stratify=task is not Task.REGRESSION))
    sample = prepared.sample_submission["y"]
    if task is Task.REGRESSION:
        expected = round(prepared.train["y"].mean(), 1)
    assert (sample == expected).all()


def test_duplicate_keys_are_refused():
    rows = _rows(8)
    rows[KEY] = "same"
    with pytest.raises(ValueError, match="unique"):
        prepare(_definition(rows))
