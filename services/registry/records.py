"""Plain values the registry core hands out and the importers hand in (no ORM, no protos)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from mleb.ranking import LeaderboardState, leaderboard_state_of

# Kaggle slugs, plus MLE-bench's one capitalised id (AI4Code).
COMPETITION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

COMPLEXITIES = ("low", "medium", "high")


class DataStatus(enum.StrEnum):
    PREPARED = "prepared"
    METADATA_ONLY = "metadata_only"


class Source(enum.StrEnum):
    MLEBENCH = "mlebench"
    MLEB = "mleb"


@dataclass(frozen=True)
class Metric:
    name: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LeaderboardEntry:
    position: int
    score: float | None
    team_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublicFile:
    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Answers:
    """The private answers file of a prepared competition."""

    path: str  # relative to the private folder
    format: str  # "csv" or "jsonl"
    size_bytes: int
    sha256: str


@dataclass
class CompetitionRecord:
    """Everything the registry stores about one competition, minus the files themselves."""

    id: str
    name: str
    source: Source
    metric: Metric
    description: str
    description_obfuscated: str | None = None
    category: str = ""
    complexity: str = ""
    awards_medals: bool = True
    lower_is_better: bool = False
    id_columns: list[str] = field(default_factory=list)
    target_columns: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    data_status: DataStatus = DataStatus.METADATA_ONLY
    data_status_reason: str = ""
    answers: Answers | None = None
    public_files: list[PublicFile] = field(default_factory=list)
    leaderboard: list[LeaderboardEntry] = field(default_factory=list)
    # Whether `leaderboard` came from a real file; "" for data stored before states existed.
    leaderboard_state: str = ""
    checksums_skipped: bool = False
    notes: list[str] = field(default_factory=list)
    imported_at: datetime | None = None
    bundle_digest: str = ""
    # Kept by the store, so listings need not load the leaderboard or the file list.
    leaderboard_size: int = 0
    public_data_size_bytes: int = 0
    public_listing_digest: str = ""
    public_file_count: int = 0

    def leaderboard_status(self) -> LeaderboardState:
        return leaderboard_state_of(
            self.leaderboard_state, self.leaderboard_size or len(self.leaderboard)
        )


@dataclass(frozen=True)
class Split:
    name: str
    aliases: tuple[str, ...]
    competition_ids: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    competitions: list[CompetitionRecord]
    next_page_token: str
    total_size: int


@dataclass(frozen=True)
class PublicFilesPage:
    files: list[PublicFile]
    next_page_token: str
    listing_digest: str


@dataclass(frozen=True)
class FileChunk:
    path: str
    size_bytes: int
    sha256: str
    offset: int
    data: bytes
    last_chunk: bool


@dataclass(frozen=True)
class GradingBundleHeader:
    competition_id: str
    digest: str
    not_modified: bool
    metric: Metric
    answers: Answers
    leaderboard: list[LeaderboardEntry]
    lower_is_better: bool
    awards_medals: bool
    leaderboard_state: LeaderboardState = LeaderboardState.PRESENT
    id_columns: list[str] = field(default_factory=list)
    target_columns: list[str] = field(default_factory=list)
