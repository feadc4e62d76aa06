"""How the bundled baseline agent reads a task from its data files."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from services.builtin.agents import BASELINE_AGENT


@pytest.fixture(scope="module")
def agent():
    spec = importlib.util.spec_from_file_location("baseline_agent", BASELINE_AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("sample", "target", "task"),
    [
        ([0.5, 0.5], [0, 1, 1], "probability"),
        ([152.3, 152.3], [25, 300, 120], "regression"),
        ([0.5, 0.5], [0.2, 0.7], "regression"),
        ([3, 3], [0, 3, 9], "classification"),
        (["english", "english"], ["english", "dutch"], "classification"),
        ([True, True], [True, False], "classification"),
    ],
)
def test_task_is_judged_from_the_sample_and_the_target(agent, sample, target, task):
    assert agent.task_of(pd.Series(sample), pd.Series(target)) == task


def test_columns_are_sorted_into_numeric_categorical_and_text(agent):
    features = pd.DataFrame(
        {
            "age": [30, 40],
            "planet": ["Earth", "Mars"],
            "review": ["a long sentence about things", "another rather long sentence"],
        }
    )
    assert agent.column_kinds(features) == {
        "numeric": ["age"],
        "categorical": ["planet"],
        "text": ["review"],
    }
