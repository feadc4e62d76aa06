from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescriptionVariant(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DESCRIPTION_VARIANT_UNSPECIFIED: _ClassVar[DescriptionVariant]
    DESCRIPTION_VARIANT_PLAIN: _ClassVar[DescriptionVariant]
    DESCRIPTION_VARIANT_OBFUSCATED: _ClassVar[DescriptionVariant]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SERVICE: _ClassVar[Role]
    ROLE_LAB: _ClassVar[Role]
    ROLE_SANDBOX: _ClassVar[Role]

class Medal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDAL_UNSPECIFIED: _ClassVar[Medal]
    MEDAL_NONE: _ClassVar[Medal]
    MEDAL_BRONZE: _ClassVar[Medal]
    MEDAL_SILVER: _ClassVar[Medal]
    MEDAL_GOLD: _ClassVar[Medal]

class LeaderboardState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEADERBOARD_STATE_UNSPECIFIED: _ClassVar[LeaderboardState]
    LEADERBOARD_STATE_PRESENT: _ClassVar[LeaderboardState]
    LEADERBOARD_STATE_MISSING: _ClassVar[LeaderboardState]
    LEADERBOARD_STATE_LFS_POINTER: _ClassVar[LeaderboardState]
DESCRIPTION_VARIANT_UNSPECIFIED: DescriptionVariant
DESCRIPTION_VARIANT_PLAIN: DescriptionVariant
DESCRIPTION_VARIANT_OBFUSCATED: DescriptionVariant
ROLE_UNSPECIFIED: Role
ROLE_SERVICE: Role
ROLE_LAB: Role
ROLE_SANDBOX: Role
MEDAL_UNSPECIFIED: Medal
MEDAL_NONE: Medal
MEDAL_BRONZE: Medal
MEDAL_SILVER: Medal
MEDAL_GOLD: Medal
LEADERBOARD_STATE_UNSPECIFIED: LeaderboardState
LEADERBOARD_STATE_PRESENT: LeaderboardState
LEADERBOARD_STATE_MISSING: LeaderboardState
LEADERBOARD_STATE_LFS_POINTER: LeaderboardState

class Ranking(_message.Message):
    __slots__ = ("gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold", "gold_medal", "silver_medal", "bronze_medal", "any_medal", "above_median", "is_lower_better", "medal", "leaderboard_known", "awards_medals", "leaderboard_size", "leaderboard_state", "leaderboard_note")
    GOLD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SILVER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BRONZE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    GOLD_MEDAL_FIELD_NUMBER: _ClassVar[int]
    SILVER_MEDAL_FIELD_NUMBER: _ClassVar[int]
    BRONZE_MEDAL_FIELD_NUMBER: _ClassVar[int]
    ANY_MEDAL_FIELD_NUMBER: _ClassVar[int]
    ABOVE_MEDIAN_FIELD_NUMBER: _ClassVar[int]
    IS_LOWER_BETTER_FIELD_NUMBER: _ClassVar[int]
    MEDAL_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_KNOWN_FIELD_NUMBER: _ClassVar[int]
    AWARDS_MEDALS_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_STATE_FIELD_NUMBER: _ClassVar[int]
    LEADERBOARD_NOTE_FIELD_NUMBER: _ClassVar[int]
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    any_medal: bool
    above_median: bool
    is_lower_better: bool
    medal: Medal
    leaderboard_known: bool
    awards_medals: bool
    leaderboard_size: int
    leaderboard_state: LeaderboardState
    leaderboard_note: str
    def __init__(self, gold_threshold: _Optional[float] = ..., silver_threshold: _Optional[float] = ..., bronze_threshold: _Optional[float] = ..., median_threshold: _Optional[float] = ..., gold_medal: _Optional[bool] = ..., silver_medal: _Optional[bool] = ..., bronze_medal: _Optional[bool] = ..., any_medal: _Optional[bool] = ..., above_median: _Optional[bool] = ..., is_lower_better: _Optional[bool] = ..., medal: _Optional[_Union[Medal, str]] = ..., leaderboard_known: _Optional[bool] = ..., awards_medals: _Optional[bool] = ..., leaderboard_size: _Optional[int] = ..., leaderboard_state: _Optional[_Union[LeaderboardState, str]] = ..., leaderboard_note: _Optional[str] = ...) -> None: ...

class PublicKey(_message.Message):
    __slots__ = ("keyid", "pem")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    PEM_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    pem: str
    def __init__(self, keyid: _Optional[str] = ..., pem: _Optional[str] = ...) -> None: ...
