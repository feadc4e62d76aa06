import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mleb.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Complexity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLEXITY_UNSPECIFIED: _ClassVar[Complexity]
    COMPLEXITY_LOW: _ClassVar[Complexity]
    COMPLEXITY_MEDIUM: _ClassVar[Complexity]
    COMPLEXITY_HIGH: _ClassVar[Complexity]

class DataStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_STATUS_UNSPECIFIED: _ClassVar[DataStatus]
    DATA_STATUS_PREPARED: _ClassVar[DataStatus]
    DATA_STATUS_METADATA_ONLY: _ClassVar[DataStatus]

class CompetitionView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPETITION_VIEW_UNSPECIFIED: _ClassVar[CompetitionView]
    COMPETITION_VIEW_BASIC: _ClassVar[CompetitionView]
    COMPETITION_VIEW_FULL: _ClassVar[CompetitionView]
COMPLEXITY_UNSPECIFIED: Complexity
COMPLEXITY_LOW: Complexity
COMPLEXITY_MEDIUM: Complexity
COMPLEXITY_HIGH: Complexity
DATA_STATUS_UNSPECIFIED: DataStatus
DATA_STATUS_PREPARED: DataStatus
DATA_STATUS_METADATA_ONLY: DataStatus
COMPETITION_VIEW_UNSPECIFIED: CompetitionView
COMPETITION_VIEW_BASIC: CompetitionView
COMPETITION_VIEW_FULL: CompetitionView

class Metric(_message.Message):
    __slots__ = ("name", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PublicFile(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class Competition(_message.Message):
    __slots__ = ("id", "name", "category", "complexity", "awards_medals", "splits", "metric", "lower_is_better", "source", "data_status", "data_status_reason", "leaderboard_size", "description", "public_files", "public_data_size_bytes", "checksums_skipped", "imported_at", "has_obfuscated_description", "id_columns", "target_columns", "import_notes", "leaderboard_state", "leaderboard_note", "known_issues", "bundle_digest", "public_listing_digest", "public_file_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    AWARDS_MEDALS_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DATA_STATUS_FIELD_NUMBER: _ClassVar[int]
    DATA_STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_FILES_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_DATA_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKSUMS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    HAS_OBFUSCATED_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    IMPORT_NOTES_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_STATE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_NOTE_FIELD_NUMBER: _ClassVar[int]
    KNOWN_ISSUES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_LISTING_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    category: str
    complexity: Complexity
    awards_medals: bool
    splits: _containers.RepeatedScalarFieldContainer[str]
    metric: Metric
    lower_is_better: bool
    source: str
    data_status: DataStatus
    data_status_reason: str
    leaderboard_size: int
    description: str
    public_files: _containers.RepeatedCompositeFieldContainer[PublicFile]
    public_data_size_bytes: int
    checksums_skipped: bool
    imported_at: _timestamp_pb2.Timestamp
    has_obfuscated_description: bool
    id_columns: _containers.RepeatedScalarFieldContainer[str]
    target_columns: _containers.RepeatedScalarFieldContainer[str]
    import_notes: _containers.RepeatedScalarFieldContainer[str]
    leaderboard_state: _common_pb2.LeaderboardState
    leaderboard_note: str
    known_issues: _containers.RepeatedCompositeFieldContainer[KnownIssue]
    bundle_digest: str
    public_listing_digest: str
    public_file_count: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., complexity: _Optional[_Union[Complexity, str]] = ..., awards_medals: _Optional[bool] = ..., splits: _Optional[_Iterable[str]] = ..., metric: _Optional[_Union[Metric, _Mapping]] = ..., lower_is_better: _Optional[bool] = ..., source: _Optional[str] = ..., data_status: _Optional[_Union[DataStatus, str]] = ..., data_status_reason: _Optional[str] = ..., leaderboard_size: _Optional[int] = ..., description: _Optional[str] = ..., public_files: _Optional[_Iterable[_Union[PublicFile, _Mapping]]] = ..., public_data_size_bytes: _Optional[int] = ..., checksums_skipped: _Optional[bool] = ..., imported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_obfuscated_description: _Optional[bool] = ..., id_columns: _Optional[_Iterable[str]] = ..., target_columns: _Optional[_Iterable[str]] = ..., import_notes: _Optional[_Iterable[str]] = ..., leaderboard_state: _Optional[_Union[_common_pb2.LeaderboardState, str]] = ..., leaderboard_note: _Optional[str] = ..., known_issues: _Optional[_Iterable[_Union[KnownIssue, _Mapping]]] = ..., bundle_digest: _Optional[str] = ..., public_listing_digest: _Optional[str] = ..., public_file_count: _Optional[int] = ...) -> None: ...

class KnownIssue(_message.Message):
    __slots__ = ("upstream_issue", "url", "kind", "title", "summary")
    UPSTREAM_ISSUE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    upstream_issue: int
    url: str
    kind: str
    title: str
    summary: str
    def __init__(self, upstream_issue: _Optional[int] = ..., url: _Optional[str] = ..., kind: _Optional[str] = ..., title: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class LeaderboardEntry(_message.Message):
    __slots__ = ("position", "score", "team_name", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEAM_NAME_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    position: int
    score: float
    team_name: str
    extra: _containers.ScalarMap[str, str]
    def __init__(self, position: _Optional[int] = ..., score: _Optional[float] = ..., team_name: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Split(_message.Message):
    __slots__ = ("name", "aliases", "competition_ids")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    COMPETITION_IDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    competition_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., competition_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GradingBundleHeader(_message.Message):
    __slots__ = ("competition_id", "digest", "not_modified", "metric", "answers_format", "answers_size_bytes", "answers_sha256", "leaderboard", "lower_is_better", "awards_medals", "id_columns", "target_columns", "leaderboard_state")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_SHA256_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    AWARDS_MEDALS_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TARGET_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_STATE_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    digest: str
    not_modified: bool
    metric: Metric
    answers_format: str
    answers_size_bytes: int
    answers_sha256: str
    leaderboard: _containers.RepeatedCompositeFieldContainer[LeaderboardEntry]
    lower_is_better: bool
    awards_medals: bool
    id_columns: _containers.RepeatedScalarFieldContainer[str]
    target_columns: _containers.RepeatedScalarFieldContainer[str]
    leaderboard_state: _common_pb2.LeaderboardState
    def __init__(self, competition_id: _Optional[str] = ..., digest: _Optional[str] = ..., not_modified: _Optional[bool] = ..., metric: _Optional[_Union[Metric, _Mapping]] = ..., answers_format: _Optional[str] = ..., answers_size_bytes: _Optional[int] = ..., answers_sha256: _Optional[str] = ..., leaderboard: _Optional[_Iterable[_Union[LeaderboardEntry, _Mapping]]] = ..., lower_is_better: _Optional[bool] = ..., awards_medals: _Optional[bool] = ..., id_columns: _Optional[_Iterable[str]] = ..., target_columns: _Optional[_Iterable[str]] = ..., leaderboard_state: _Optional[_Union[_common_pb2.LeaderboardState, str]] = ...) -> None: ...

class RevokedToken(_message.Message):
    __slots__ = ("token_id", "sandbox_id", "expires_at", "revoked_at", "reason")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    sandbox_id: str
    expires_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, token_id: _Optional[str] = ..., sandbox_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("seq", "prev_hash", "body_hash", "hash", "body_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    BODY_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    prev_hash: str
    body_hash: str
    hash: str
    body_json: str
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[str] = ..., body_hash: _Optional[str] = ..., hash: _Optional[str] = ..., body_json: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("kind", "fields_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    fields_json: str
    def __init__(self, kind: _Optional[str] = ..., fields_json: _Optional[str] = ...) -> None: ...
