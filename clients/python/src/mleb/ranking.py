"""Kaggle medal thresholds, exactly as MLE-bench applies them.

The registry uses this to show a leaderboard's thresholds and the grader to rank a score, so
both always agree. Thresholds follow kaggle.com/progression: each is the score at a 1-indexed
leaderboard position that depends on the number of teams.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from mleb.common.v1 import common_pb2


class Medal(enum.StrEnum):
    NONE = "none"
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class LeaderboardState(enum.StrEnum):
    """Whether a competition has a real leaderboard, and if not, why not."""

    PRESENT = "present"
    # No leaderboard file was imported (none in the source folder).
    MISSING = "missing"
    # The file was a Git LFS pointer, as in a plain clone of MLE-bench.
    LFS_POINTER = "lfs_pointer"


_LFS_FIX = "run `git lfs pull` in the MLE-bench checkout, then import the competition again"
_LEADERBOARD_NOTES = {
    LeaderboardState.PRESENT: "",
    LeaderboardState.LFS_POINTER: (
        "no leaderboard: its leaderboard.csv was a Git LFS pointer when it was imported, so "
        f"there are no medal or median thresholds; {_LFS_FIX}"
    ),
    LeaderboardState.MISSING: (
        "no leaderboard: none was imported, so there are no medal or median thresholds; for an "
        f"MLE-bench competition, {_LFS_FIX}"
    ),
}


def leaderboard_note(state: LeaderboardState) -> str:
    """What to tell a reader about a competition's leaderboard; empty when it is present."""
    return _LEADERBOARD_NOTES[state]


def leaderboard_state_of(stored: str, leaderboard_size: int) -> LeaderboardState:
    """A stored state, or for data written before states existed, one implied by the rows."""
    if stored:
        return LeaderboardState(stored)
    return LeaderboardState.PRESENT if leaderboard_size else LeaderboardState.MISSING


@dataclass(frozen=True)
class Ranking:
    """Where a score lands on a leaderboard. Thresholds are None without a leaderboard."""

    gold_threshold: float | None
    silver_threshold: float | None
    bronze_threshold: float | None
    median_threshold: float | None
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    is_lower_better: bool
    leaderboard_size: int
    # Why there is no leaderboard, when the caller knows; None: implied by leaderboard_size.
    leaderboard_state: LeaderboardState | None = None

    @property
    def leaderboard_status(self) -> LeaderboardState:
        return self.leaderboard_state or leaderboard_state_of("", self.leaderboard_size)

    @property
    def any_medal(self) -> bool:
        return self.gold_medal or self.silver_medal or self.bronze_medal

    @property
    def leaderboard_known(self) -> bool:
        return self.leaderboard_size > 0

    @property
    def medal(self) -> Medal:
        if self.gold_medal:
            return Medal.GOLD
        if self.silver_medal:
            return Medal.SILVER
        if self.bronze_medal:
            return Medal.BRONZE
        return Medal.NONE


def is_lower_better(scores: Sequence[float]) -> bool:
    """A leaderboard is best first, so lower is better when its first score is below its last."""
    if not scores:
        raise ValueError("cannot infer the metric direction from an empty leaderboard")
    return bool(scores[0] < scores[-1])


def medal_positions(num_teams: int) -> tuple[int, int, int]:
    """1-indexed leaderboard positions of the gold, silver and bronze thresholds."""
    if num_teams < 1:
        raise ValueError("a leaderboard needs at least one team")
    if num_teams < 100:
        return (
            max(1, int(num_teams * 0.1)),
            max(1, int(num_teams * 0.2)),
            max(1, int(num_teams * 0.4)),
        )
    if num_teams < 250:
        return 10, max(1, int(num_teams * 0.2)), max(1, int(num_teams * 0.4))
    if num_teams < 1000:
        return 10 + int(num_teams * 0.002), 50, 100
    return (
        10 + int(num_teams * 0.002),
        max(1, int(num_teams * 0.05)),
        max(1, int(num_teams * 0.1)),
    )


def _median(scores: Sequence[float]) -> float:
    # pandas' Series.median: NaN entries are skipped, an all-NaN series gives NaN.
    present = [s for s in scores if not math.isnan(s)]
    return float(statistics.median(present)) if present else math.nan


def rank_score(
    score: float | None,
    leaderboard_scores: Sequence[float],
    *,
    lower_is_better: bool | None = None,
) -> Ranking:
    """Ranks `score` against a best-first leaderboard.

    `lower_is_better` defaults to the leaderboard's own order, as MLE-bench infers it. A None
    score earns nothing; an empty leaderboard gives no thresholds and no medals.
    """
    scores = [math.nan if s is None else float(s) for s in leaderboard_scores]
    if not scores:
        return Ranking(None, None, None, None, False, False, False, False, bool(lower_is_better), 0)
    lower = is_lower_better(scores) if lower_is_better is None else lower_is_better
    gold_pos, silver_pos, bronze_pos = medal_positions(len(scores))
    gold, silver, bronze = (scores[p - 1] for p in (gold_pos, silver_pos, bronze_pos))
    median = _median(scores)

    def reaches(threshold: float) -> bool:
        assert score is not None  # called only once a score is known
        return score <= threshold if lower else score >= threshold

    if score is None:
        gold_medal = silver_medal = bronze_medal = above_median = False
    else:
        # Only the best medal earned counts.
        gold_medal = reaches(gold)
        silver_medal = not gold_medal and reaches(silver)
        bronze_medal = not gold_medal and not silver_medal and reaches(bronze)
        above_median = score < median if lower else score > median
    return Ranking(
        gold_threshold=gold,
        silver_threshold=silver,
        bronze_threshold=bronze,
        median_threshold=median,
        gold_medal=bool(gold_medal),
        silver_medal=bool(silver_medal),
        bronze_medal=bool(bronze_medal),
        above_median=bool(above_median),
        is_lower_better=lower,
        leaderboard_size=len(scores),
    )


LEADERBOARD_STATE_TO_PROTO = {
    LeaderboardState.PRESENT: common_pb2.LEADERBOARD_STATE_PRESENT,
    LeaderboardState.MISSING: common_pb2.LEADERBOARD_STATE_MISSING,
    LeaderboardState.LFS_POINTER: common_pb2.LEADERBOARD_STATE_LFS_POINTER,
}
_LEADERBOARD_STATE_FROM_PROTO = {v: k for k, v in LEADERBOARD_STATE_TO_PROTO.items()}


def leaderboard_state_from_proto(value: int, leaderboard_size: int) -> LeaderboardState:
    """The wire value; UNSPECIFIED (a peer that predates states) is implied by the rows."""
    state = _LEADERBOARD_STATE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    return state or leaderboard_state_of("", leaderboard_size)


_MEDAL_TO_PROTO = {
    Medal.NONE: common_pb2.MEDAL_NONE,
    Medal.BRONZE: common_pb2.MEDAL_BRONZE,
    Medal.SILVER: common_pb2.MEDAL_SILVER,
    Medal.GOLD: common_pb2.MEDAL_GOLD,
}


def ranking_to_proto(
    ranking: Ranking,
    *,
    awards_medals: bool,
    leaderboard_state: LeaderboardState | None = None,
) -> common_pb2.Ranking:
    """The wire form shared by the registry (thresholds) and the grader (a ranked score)."""
    state = leaderboard_state or ranking.leaderboard_status
    message = common_pb2.Ranking(
        leaderboard_state=LEADERBOARD_STATE_TO_PROTO[state],
        leaderboard_note=leaderboard_note(state),
        gold_medal=ranking.gold_medal,
        silver_medal=ranking.silver_medal,
        bronze_medal=ranking.bronze_medal,
        any_medal=ranking.any_medal,
        above_median=ranking.above_median,
        is_lower_better=ranking.is_lower_better,
        medal=_MEDAL_TO_PROTO[ranking.medal],
        leaderboard_known=ranking.leaderboard_known,
        awards_medals=awards_medals,
        leaderboard_size=ranking.leaderboard_size,
    )
    # Unset optional fields mean "no leaderboard", so only known thresholds are written.
    for name in ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold"):
        value = getattr(ranking, name)
        if value is not None:
            setattr(message, name, value)
    return message
