"""MLE-bench's competition report and its aggregated grading report, as plain data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The error of a report whose submission file does not exist.
NO_SUBMISSION = "No submission file was found."


@dataclass(frozen=True)
class CompetitionReport:
    competition_id: str
    score: float | None
    gold_threshold: float | None
    silver_threshold: float | None
    bronze_threshold: float | None
    median_threshold: float | None
    any_medal: bool
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    submission_exists: bool
    valid_submission: bool
    is_lower_better: bool
    submission_path: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Extensions beyond MLE-bench's fields.
    error: str = ""
    awards_medals: bool = True
    grader_spec_version: int = 0
    bundle_digest: str = ""
    # "present", "missing" or "lfs_pointer"; "" when not reported (an older grader).
    leaderboard_state: str = ""
    # Without a leaderboard: why there are no thresholds, and the fix.
    leaderboard_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """MLE-bench's JSON keys first, then mleb's extensions."""
        return {
            "competition_id": self.competition_id,
            "score": _json_float(self.score),
            "gold_threshold": _json_float(self.gold_threshold),
            "silver_threshold": _json_float(self.silver_threshold),
            "bronze_threshold": _json_float(self.bronze_threshold),
            "median_threshold": _json_float(self.median_threshold),
            "any_medal": self.any_medal,
            "gold_medal": self.gold_medal,
            "silver_medal": self.silver_medal,
            "bronze_medal": self.bronze_medal,
            "above_median": self.above_median,
            "submission_exists": self.submission_exists,
            "valid_submission": self.valid_submission,
            "is_lower_better": self.is_lower_better,
            "created_at": self.created_at.isoformat(),
            "submission_path": self.submission_path,
            "error": self.error or None,
            "awards_medals": self.awards_medals,
            "grader_spec_version": self.grader_spec_version,
            "bundle_digest": self.bundle_digest or None,
            "leaderboard_state": self.leaderboard_state or None,
            "leaderboard_note": self.leaderboard_note or None,
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def aggregate_reports(reports: Sequence[CompetitionReport]) -> dict[str, Any]:
    """The totals MLE-bench's `grade` command writes, plus every competition report."""
    gold = sum(r.gold_medal for r in reports)
    silver = sum(r.silver_medal for r in reports)
    bronze = sum(r.bronze_medal for r in reports)
    return {
        "total_runs": len(reports),
        "total_runs_with_submissions": sum(r.submission_exists for r in reports),
        "total_valid_submissions": sum(r.valid_submission for r in reports),
        "total_medals": gold + silver + bronze,
        "total_gold_medals": gold,
        "total_silver_medals": silver,
        "total_bronze_medals": bronze,
        "total_above_median": sum(r.above_median for r in reports),
        "competition_reports": [r.to_dict() for r in reports],
    }
