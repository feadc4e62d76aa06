import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mleb.common.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CompetitionReport(_message.Message):
    __slots__ = ("competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold", "any_medal", "gold_medal", "silver_medal", "bronze_medal", "above_median", "submission_exists", "valid_submission", "is_lower_better", "created_at", "submission_path", "error", "awards_medals", "grader_spec_version", "bundle_digest", "leaderboard_state", "leaderboard_note")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GOLD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SILVER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BRONZE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ANY_MEDAL_FIELD_NUMBER: _ClassVar[int]
    GOLD_MEDAL_FIELD_NUMBER: _ClassVar[int]
    SILVER_MEDAL_FIELD_NUMBER: _ClassVar[int]
    BRONZE_MEDAL_FIELD_NUMBER: _ClassVar[int]
    ABOVE_MEDIAN_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_EXISTS_FIELD_NUMBER: _ClassVar[int]
    VALID_SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    IS_LOWER_BETTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_PATH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AWARDS_MEDALS_FIELD_NUMBER: _ClassVar[int]
    GRADER_SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_STATE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_NOTE_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    score: float
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    any_medal: bool
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    submission_exists: bool
    valid_submission: bool
    is_lower_better: bool
    created_at: _timestamp_pb2.Timestamp
    submission_path: str
    error: str
    awards_medals: bool
    grader_spec_version: int
    bundle_digest: str
    leaderboard_state: _common_pb2.LeaderboardState
    leaderboard_note: str
    def __init__(self, competition_id: _Optional[str] = ..., score: _Optional[float] = ..., gold_threshold: _Optional[float] = ..., silver_threshold: _Optional[float] = ..., bronze_threshold: _Optional[float] = ..., median_threshold: _Optional[float] = ..., any_medal: _Optional[bool] = ..., gold_medal: _Optional[bool] = ..., silver_medal: _Optional[bool] = ..., bronze_medal: _Optional[bool] = ..., above_median: _Optional[bool] = ..., submission_exists: _Optional[bool] = ..., valid_submission: _Optional[bool] = ..., is_lower_better: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submission_path: _Optional[str] = ..., error: _Optional[str] = ..., awards_medals: _Optional[bool] = ..., grader_spec_version: _Optional[int] = ..., bundle_digest: _Optional[str] = ..., leaderboard_state: _Optional[_Union[_common_pb2.LeaderboardState, str]] = ..., leaderboard_note: _Optional[str] = ...) -> None: ...
