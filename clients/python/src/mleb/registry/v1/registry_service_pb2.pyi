import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mleb.common.v1 import common_pb2 as _common_pb2
from mleb.registry.v1 import registry_pb2 as _registry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCompetitionsRequest(_message.Message):
    __slots__ = ("split", "category", "complexity", "page_size", "page_token", "view")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    split: str
    category: str
    complexity: _registry_pb2.Complexity
    page_size: int
    page_token: str
    view: _registry_pb2.CompetitionView
    def __init__(self, split: _Optional[str] = ..., category: _Optional[str] = ..., complexity: _Optional[_Union[_registry_pb2.Complexity, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., view: _Optional[_Union[_registry_pb2.CompetitionView, str]] = ...) -> None: ...

class ListCompetitionsResponse(_message.Message):
    __slots__ = ("competitions", "next_page_token", "total_size")
    COMPETITIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    competitions: _containers.RepeatedCompositeFieldContainer[_registry_pb2.Competition]
    next_page_token: str
    total_size: int
    def __init__(self, competitions: _Optional[_Iterable[_Union[_registry_pb2.Competition, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetCompetitionRequest(_message.Message):
    __slots__ = ("competition_id", "description_variant", "omit_public_files")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_VARIANT_FIELD_NUMBER: _ClassVar[int]
    OMIT_PUBLIC_FILES_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    description_variant: _common_pb2.DescriptionVariant
    omit_public_files: bool
    def __init__(self, competition_id: _Optional[str] = ..., description_variant: _Optional[_Union[_common_pb2.DescriptionVariant, str]] = ..., omit_public_files: _Optional[bool] = ...) -> None: ...

class ListPublicFilesRequest(_message.Message):
    __slots__ = ("competition_id", "page_size", "page_token")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    page_size: int
    page_token: str
    def __init__(self, competition_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPublicFilesResponse(_message.Message):
    __slots__ = ("public_files", "next_page_token", "public_listing_digest")
    PUBLIC_FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_LISTING_DIGEST_FIELD_NUMBER: _ClassVar[int]
    public_files: _containers.RepeatedCompositeFieldContainer[_registry_pb2.PublicFile]
    next_page_token: str
    public_listing_digest: str
    def __init__(self, public_files: _Optional[_Iterable[_Union[_registry_pb2.PublicFile, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., public_listing_digest: _Optional[str] = ...) -> None: ...

class GetCompetitionResponse(_message.Message):
    __slots__ = ("competition",)
    COMPETITION_FIELD_NUMBER: _ClassVar[int]
    competition: _registry_pb2.Competition
    def __init__(self, competition: _Optional[_Union[_registry_pb2.Competition, _Mapping]] = ...) -> None: ...

class GetLeaderboardRequest(_message.Message):
    __slots__ = ("competition_id",)
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    def __init__(self, competition_id: _Optional[str] = ...) -> None: ...

class GetLeaderboardResponse(_message.Message):
    __slots__ = ("competition_id", "entries", "lower_is_better", "thresholds")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LOWER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    entries: _containers.RepeatedCompositeFieldContainer[_registry_pb2.LeaderboardEntry]
    lower_is_better: bool
    thresholds: _common_pb2.Ranking
    def __init__(self, competition_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[_registry_pb2.LeaderboardEntry, _Mapping]]] = ..., lower_is_better: _Optional[bool] = ..., thresholds: _Optional[_Union[_common_pb2.Ranking, _Mapping]] = ...) -> None: ...

class ListSplitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSplitsResponse(_message.Message):
    __slots__ = ("splits",)
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    splits: _containers.RepeatedCompositeFieldContainer[_registry_pb2.Split]
    def __init__(self, splits: _Optional[_Iterable[_Union[_registry_pb2.Split, _Mapping]]] = ...) -> None: ...

class DownloadPublicDataRequest(_message.Message):
    __slots__ = ("competition_id", "paths", "packed")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    packed: bool
    def __init__(self, competition_id: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., packed: _Optional[bool] = ...) -> None: ...

class DownloadPublicDataResponse(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256", "offset", "data", "last_chunk", "chunks")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_CHUNK_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: str
    offset: int
    data: bytes
    last_chunk: bool
    chunks: _containers.RepeatedCompositeFieldContainer[PublicDataChunk]
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last_chunk: _Optional[bool] = ..., chunks: _Optional[_Iterable[_Union[PublicDataChunk, _Mapping]]] = ...) -> None: ...

class PublicDataChunk(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256", "offset", "data", "last_chunk")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_CHUNK_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: str
    offset: int
    data: bytes
    last_chunk: bool
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., last_chunk: _Optional[bool] = ...) -> None: ...

class GetGradingBundleRequest(_message.Message):
    __slots__ = ("competition_id", "known_digest")
    COMPETITION_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_DIGEST_FIELD_NUMBER: _ClassVar[int]
    competition_id: str
    known_digest: str
    def __init__(self, competition_id: _Optional[str] = ..., known_digest: _Optional[str] = ...) -> None: ...

class GetGradingBundleResponse(_message.Message):
    __slots__ = ("header", "answers_chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: _registry_pb2.GradingBundleHeader
    answers_chunk: bytes
    def __init__(self, header: _Optional[_Union[_registry_pb2.GradingBundleHeader, _Mapping]] = ..., answers_chunk: _Optional[bytes] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("token", "token_id", "sandbox_id", "expires_at", "reason")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_id: str
    sandbox_id: str
    expires_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, token: _Optional[str] = ..., token_id: _Optional[str] = ..., sandbox_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: _registry_pb2.RevokedToken
    def __init__(self, revoked: _Optional[_Union[_registry_pb2.RevokedToken, _Mapping]] = ...) -> None: ...

class ListRevokedTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRevokedTokensResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[_registry_pb2.RevokedToken]
    def __init__(self, revoked: _Optional[_Iterable[_Union[_registry_pb2.RevokedToken, _Mapping]]] = ...) -> None: ...

class AppendAuditEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_registry_pb2.AuditEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_registry_pb2.AuditEvent, _Mapping]]] = ...) -> None: ...

class AppendAuditEventsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_registry_pb2.AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[_registry_pb2.AuditRecord, _Mapping]]] = ...) -> None: ...

class ExportAuditChainRequest(_message.Message):
    __slots__ = ("from_seq", "to_seq")
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    to_seq: int
    def __init__(self, from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ...) -> None: ...

class ExportAuditChainResponse(_message.Message):
    __slots__ = ("records", "next_from_seq", "head_seq")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_registry_pb2.AuditRecord]
    next_from_seq: int
    head_seq: int
    def __init__(self, records: _Optional[_Iterable[_Union[_registry_pb2.AuditRecord, _Mapping]]] = ..., next_from_seq: _Optional[int] = ..., head_seq: _Optional[int] = ...) -> None: ...
