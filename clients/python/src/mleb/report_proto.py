"""CompetitionReport between its domain form and the wire (both directions)."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from mleb.common.v1 import common_pb2
from mleb.grader.v1 import grader_pb2
from mleb.ranking import LEADERBOARD_STATE_TO_PROTO, LeaderboardState
from mleb.reports import CompetitionReport

_STATE_FROM_PROTO = {value: state for state, value in LEADERBOARD_STATE_TO_PROTO.items()}
_OPTIONAL = ("score", "gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold")


def report_to_proto(report: CompetitionReport) -> grader_pb2.CompetitionReport:
    created_at = timestamp_pb2.Timestamp()
    created_at.FromDatetime(report.created_at)
    message = grader_pb2.CompetitionReport(
        competition_id=report.competition_id,
        any_medal=report.any_medal,
        gold_medal=report.gold_medal,
        silver_medal=report.silver_medal,
        bronze_medal=report.bronze_medal,
        above_median=report.above_median,
        submission_exists=report.submission_exists,
        valid_submission=report.valid_submission,
        is_lower_better=report.is_lower_better,
        created_at=created_at,
        submission_path=report.submission_path,
        error=report.error,
        awards_medals=report.awards_medals,
        grader_spec_version=report.grader_spec_version,
        bundle_digest=report.bundle_digest,
        leaderboard_note=report.leaderboard_note,
    )
    if report.leaderboard_state:
        message.leaderboard_state = LEADERBOARD_STATE_TO_PROTO[
            LeaderboardState(report.leaderboard_state)
        ]
    # Unset optional fields mean "no score" and "no leaderboard".
    for name in _OPTIONAL:
        value = getattr(report, name)
        if value is not None:
            setattr(message, name, value)
    return message


def report_from_proto(message: grader_pb2.CompetitionReport) -> CompetitionReport:
    optional = {n: getattr(message, n) if message.HasField(n) else None for n in _OPTIONAL}
    return CompetitionReport(
        competition_id=message.competition_id,
        **optional,
        any_medal=message.any_medal,
        gold_medal=message.gold_medal,
        silver_medal=message.silver_medal,
        bronze_medal=message.bronze_medal,
        above_median=message.above_median,
        submission_exists=message.submission_exists,
        valid_submission=message.valid_submission,
        is_lower_better=message.is_lower_better,
        submission_path=message.submission_path,
        created_at=message.created_at.ToDatetime().astimezone(),
        error=message.error,
        awards_medals=message.awards_medals,
        grader_spec_version=message.grader_spec_version,
        bundle_digest=message.bundle_digest,
        leaderboard_state=_state_name(message.leaderboard_state),
        leaderboard_note=message.leaderboard_note,
    )


def _state_name(value: int) -> str:
    state = _STATE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    return state.value if state else ""


def report_without_score(
    competition_id: str,
    ranking: common_pb2.Ranking,
    *,
    submission_path: str,
    submission_exists: bool,
    error: str,
) -> CompetitionReport:
    """A report for a submission that was never graded (missing, or refused outright).

    GradeSubmission cannot express a missing file, so such an entry is built from RankScore's
    ranking of "no score": the thresholds and direction, and no medal.
    """
    message = grader_pb2.CompetitionReport(
        competition_id=competition_id,
        is_lower_better=ranking.is_lower_better,
        awards_medals=ranking.awards_medals,
        submission_exists=submission_exists,
        valid_submission=False,
        submission_path=submission_path,
        error=error,
        leaderboard_state=ranking.leaderboard_state,
        leaderboard_note=ranking.leaderboard_note,
    )
    message.created_at.GetCurrentTime()
    for name in _OPTIONAL[1:]:
        if ranking.HasField(name):
            setattr(message, name, getattr(ranking, name))
    return report_from_proto(message)
