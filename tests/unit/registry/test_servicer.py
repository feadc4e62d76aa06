"""Proto conversions the servicer relies on (the RPCs themselves run in integration tests)."""

from __future__ import annotations

import math

from services.registry.records import LeaderboardEntry
from services.registry.servicer import leaderboard_entry_to_proto


def test_missing_scores_travel_as_nan() -> None:
    assert math.isnan(leaderboard_entry_to_proto(LeaderboardEntry(1, None)).score)
    assert leaderboard_entry_to_proto(LeaderboardEntry(2, 0.5, "team", {"a": "b"})).extra == {
        "a": "b"
    }
