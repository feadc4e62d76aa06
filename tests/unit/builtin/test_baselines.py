"""The committed synthetic leaderboards are reproducible, and the baselines are sound."""

from __future__ import annotations

import pandas as pd
import pytest
from mleb.ranking import medal_positions

from services.builtin.baselines import baseline_named, baselines, grade, predict
from services.builtin.catalog import BUILTINS
from services.builtin.definition import Task, prepare
from services.builtin.folder import leaderboard_path


@pytest.mark.parametrize("task", list(Task))
def test_each_grid_has_enough_distinct_entries_for_medal_bands(task):
    names = [b.team_name for b in baselines(task)]
    assert 30 <= len(names) <= 100
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("competition_id", list(BUILTINS))
def test_committed_leaderboard_rows_are_reproduced(competition_id):
    definition = BUILTINS[competition_id].definition
    board = pd.read_csv(leaderboard_path(competition_id))
    prepared = prepare(definition)
    gold = medal_positions(len(board))[0]
    # The best entry, the gold threshold's entry and the worst one.
    for position in (0, gold - 1, len(board) - 1):
        row = board.iloc[position]
        baseline = baseline_named(definition.task, row.team_name)
        assert grade(definition, prepared, predict(definition, prepared, baseline)) == row.score


@pytest.mark.parametrize("competition_id", list(BUILTINS))
def test_leaderboard_is_best_first_and_spread(competition_id):
    definition = BUILTINS[competition_id].definition
    scores = pd.read_csv(leaderboard_path(competition_id))["score"]
    ordered = (
        scores.is_monotonic_increasing
        if definition.lower_is_better
        else (scores.is_monotonic_decreasing)
    )
    assert ordered
    assert scores.nunique() >= len(scores) // 2


def test_unknown_team_name_is_refused():
    with pytest.raises(KeyError, match="nobody"):
        baseline_named(Task.TEXT, "nobody")
