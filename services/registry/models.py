"""The registry's tables. Every name starts with registry_ so the sandbox can share the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Double, ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CompetitionRow(Base):
    __tablename__ = "registry_competitions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    # "mlebench" or "mleb" (the project's own format).
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(128), index=True)
    # "low", "medium", "high" or "" when unknown.
    complexity: Mapped[str] = mapped_column(String(16), index=True)
    awards_medals: Mapped[bool]
    metric_name: Mapped[str] = mapped_column(String(256))
    metric_params: Mapped[dict[str, str]] = mapped_column(JSON)
    lower_is_better: Mapped[bool]
    id_columns: Mapped[list[str]] = mapped_column(JSON)
    target_columns: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    description_obfuscated: Mapped[str | None] = mapped_column(Text)
    # "prepared" or "metadata_only".
    data_status: Mapped[str] = mapped_column(String(32))
    data_status_reason: Mapped[str] = mapped_column(Text)
    # Relative to the competition's private folder; empty without prepared data.
    answers_path: Mapped[str] = mapped_column(String(1024))
    answers_format: Mapped[str] = mapped_column(String(16))
    answers_size_bytes: Mapped[int] = mapped_column(BigInteger)
    answers_sha256: Mapped[str] = mapped_column(String(64))
    # Content address of the grading bundle (answers + leaderboard + metric).
    bundle_digest: Mapped[str] = mapped_column(String(64))
    public_data_size_bytes: Mapped[int] = mapped_column(BigInteger)
    # mleb.public_listing's digest of the public files, and their number: kept so that
    # GetCompetition can say what the listing is without loading it.
    public_listing_digest: Mapped[str] = mapped_column(String(64), server_default="")
    public_file_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Denormalised so listings need not count leaderboard rows.
    leaderboard_size: Mapped[int]
    # "present", "missing" or "lfs_pointer"; "" for rows written before it existed.
    leaderboard_state: Mapped[str] = mapped_column(String(16), server_default="")
    checksums_skipped: Mapped[bool]
    # What the importer wants a reader to know (missing leaderboard, skipped checks, ...).
    notes: Mapped[list[str]] = mapped_column(JSON)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaderboardEntryRow(Base):
    __tablename__ = "registry_leaderboard_entries"

    competition_id: Mapped[str] = mapped_column(
        ForeignKey("registry_competitions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(primary_key=True)
    # NULL stands for a team without a score (NaN in Kaggle's file).
    score: Mapped[float | None] = mapped_column(Double)
    team_name: Mapped[str] = mapped_column(String(512))
    extra: Mapped[dict[str, str]] = mapped_column(JSON)


class PublicFileRow(Base):
    __tablename__ = "registry_public_files"

    competition_id: Mapped[str] = mapped_column(
        ForeignKey("registry_competitions.id", ondelete="CASCADE"), primary_key=True
    )
    # Relative to the public folder, "/"-separated.
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class SplitMemberRow(Base):
    __tablename__ = "registry_split_members"

    split: Mapped[str] = mapped_column(String(64), primary_key=True)
    competition_id: Mapped[str] = mapped_column(
        ForeignKey("registry_competitions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
