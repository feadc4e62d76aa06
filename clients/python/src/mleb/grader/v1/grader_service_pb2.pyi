from mleb.common.v1 import common_pb2 as _common_pb2
from mleb.grader.v1 import grader_pb2 as _grader_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmissionHeader(_message.Message):
    __slots__ = ("competition_id", "submission_path", "size_bytes")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    submission_path: str
    size_bytes: int
    def __init__(self, competition_id: _Optional[str] = ..., submission_path: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ValidateSubmissionRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SubmissionHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SubmissionHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ValidateSubmissionResponse(_message.Message):
    __slots__ = ("valid", "message", "reason")
    VALID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    message: str
    reason: str
    def __init__(self, valid: _Optional[bool] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ScoreSubmissionRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SubmissionHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SubmissionHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ScoreSubmissionResponse(_message.Message):
    __slots__ = ("score", "valid", "error", "grader_spec_version")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GRADER_SPEC_VERSION_FIELD_NUMBER: _ClassVar[int]
    score: float
    valid: bool
    error: str
    grader_spec_version: int
    def __init__(self, score: _Optional[float] = ..., valid: _Optional[bool] = ..., error: _Optional[str] = ..., grader_spec_version: _Optional[int] = ...) -> None: ...

class GradeSubmissionRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SubmissionHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SubmissionHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class GradeSubmissionResponse(_message.Message):
    __slots__ = ("report", "statement")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    report: _grader_pb2.CompetitionReport
    statement: str
    def __init__(self, report: _Optional[_Union[_grader_pb2.CompetitionReport, _Mapping]] = ..., statement: _Optional[str] = ...) -> None: ...

class RankScoreRequest(_message.Message):
    __slots__ = ("competition_id", "score")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    score: float
    def __init__(self, competition_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RankScoreResponse(_message.Message):
    __slots__ = ("ranking",)
    RANKING_FIELD_NUMBER: _ClassVar[int]
    ranking: _common_pb2.Ranking
    def __init__(self, ranking: _Optional[_Union[_common_pb2.Ranking, _Mapping]] = ...) -> None: ...

class ListPublicKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPublicKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[_common_pb2.PublicKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[_common_pb2.PublicKey, _Mapping]]] = ...) -> None: ...
