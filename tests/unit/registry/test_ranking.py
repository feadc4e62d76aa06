"""Medal thresholds must match MLE-bench's rank_score in every band, at every edge."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mleb.ranking import Medal, is_lower_better, medal_positions, rank_score


@pytest.mark.parametrize(
    ("teams", "positions"),
    [
        (1, (1, 1, 1)),
        (4, (1, 1, 1)),
        (5, (1, 1, 2)),
        (9, (1, 1, 3)),
        (10, (1, 2, 4)),
        (99, (9, 19, 39)),
        (100, (10, 20, 40)),
        (249, (10, 49, 99)),
        (250, (10, 50, 100)),
        (499, (10, 50, 100)),
        (500, (11, 50, 100)),
        (999, (11, 50, 100)),
        (1000, (12, 50, 100)),
        (1999, (13, 99, 199)),
        (5000, (20, 250, 500)),
    ],
)
def test_medal_positions_per_band(teams: int, positions: tuple[int, int, int]) -> None:
    assert medal_positions(teams) == positions


def test_medal_positions_refuse_empty() -> None:
    with pytest.raises(ValueError):
        medal_positions(0)


def descending(n: int) -> list[float]:
    return [float(n - i) for i in range(n)]  # n, n-1, ..., 1: higher is better


@pytest.mark.parametrize("teams", [1, 7, 99, 100, 180, 249, 250, 600, 999, 1000, 3000])
def test_thresholds_are_scores_at_positions(teams: int) -> None:
    scores = descending(teams)
    ranking = rank_score(None, scores)
    gold, silver, bronze = medal_positions(teams)
    assert ranking.gold_threshold == scores[gold - 1]
    assert ranking.silver_threshold == scores[silver - 1]
    assert ranking.bronze_threshold == scores[bronze - 1]
    assert ranking.median_threshold == pd.Series(scores).median()
    assert ranking.leaderboard_size == teams


def test_higher_is_better_edges_are_inclusive() -> None:
    scores = descending(100)  # gold at position 10 (91), silver 20 (81), bronze 40 (61)
    assert rank_score(91.0, scores).medal is Medal.GOLD
    assert rank_score(90.999, scores).medal is Medal.SILVER
    assert rank_score(81.0, scores).medal is Medal.SILVER
    assert rank_score(80.5, scores).medal is Medal.BRONZE
    assert rank_score(61.0, scores).medal is Medal.BRONZE
    assert rank_score(60.9, scores).medal is Medal.NONE
    assert rank_score(1000.0, scores).medal is Medal.GOLD


def test_lower_is_better_edges_are_inclusive() -> None:
    scores = [float(i + 1) for i in range(100)]  # 1..100, lower is better
    ranking = rank_score(10.0, scores)
    assert ranking.is_lower_better
    assert ranking.gold_medal and not ranking.silver_medal and not ranking.bronze_medal
    assert rank_score(10.001, scores).medal is Medal.SILVER
    assert rank_score(20.0, scores).medal is Medal.SILVER
    assert rank_score(40.0, scores).medal is Medal.BRONZE
    assert rank_score(40.5, scores).medal is Medal.NONE
    assert rank_score(-5.0, scores).medal is Medal.GOLD


def test_only_one_medal_and_any_medal() -> None:
    ranking = rank_score(100.0, descending(100))
    assert (ranking.gold_medal, ranking.silver_medal, ranking.bronze_medal) == (True, False, False)
    assert ranking.any_medal
    assert not rank_score(0.0, descending(100)).any_medal


def test_median_is_strict_and_averages_even_lengths() -> None:
    scores = [4.0, 3.0, 2.0, 1.0]
    ranking = rank_score(2.5, scores)
    assert ranking.median_threshold == 2.5
    assert not ranking.above_median
    assert rank_score(2.50001, scores).above_median
    lower = [1.0, 2.0, 3.0]
    assert not rank_score(2.0, lower).above_median
    assert rank_score(1.9, lower).above_median


def test_ties_at_thresholds() -> None:
    scores = [0.9] * 30 + [0.5] * 70  # 100 teams, gold threshold 0.9 (position 10)
    ranking = rank_score(0.9, scores)
    assert ranking.gold_threshold == ranking.silver_threshold == 0.9
    assert ranking.gold_medal and not ranking.silver_medal
    # First == last: MLE-bench reads that as higher is better.
    assert not is_lower_better([0.5, 0.5])
    flat = rank_score(0.5, [0.5] * 10)
    assert flat.gold_medal and not flat.above_median


def test_none_score_earns_nothing_but_thresholds_are_known() -> None:
    ranking = rank_score(None, descending(50))
    assert not (ranking.any_medal or ranking.above_median)
    assert ranking.gold_threshold == 46.0
    assert ranking.leaderboard_known


def test_empty_leaderboard_has_no_thresholds() -> None:
    ranking = rank_score(0.5, [])
    assert ranking.gold_threshold is None and ranking.median_threshold is None
    assert not ranking.any_medal and not ranking.leaderboard_known


def test_explicit_direction_overrides_inference() -> None:
    scores = [1.0, 2.0, 3.0]  # would infer lower is better
    ranking = rank_score(3.0, scores, lower_is_better=False)
    assert not ranking.is_lower_better
    assert ranking.gold_medal


def test_nan_scores_follow_pandas() -> None:
    scores = [3.0, 2.0, math.nan, 1.0]
    ranking = rank_score(2.5, scores)
    assert ranking.median_threshold == pd.Series(scores).median() == 2.0
    assert ranking.above_median
    assert math.isnan(rank_score(None, [math.nan, math.nan]).median_threshold)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.floats(-1e6, 1e6))
def test_median_and_direction_match_pandas(scores: list[float], score: float) -> None:
    ranking = rank_score(score, scores)
    series = pd.Series(scores)
    assert ranking.median_threshold == float(series.median())
    assert ranking.is_lower_better == bool(series.iloc[0] < series.iloc[-1])
    medals = [ranking.gold_medal, ranking.silver_medal, ranking.bronze_medal]
    assert sum(medals) <= 1
