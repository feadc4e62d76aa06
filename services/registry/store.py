"""Queries over the registry's tables. Functions take a Session and return plain records."""

from __future__ import annotations

from collections import defaultdict

from mleb.public_listing import public_listing_digest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from services.common.db import check_fits, lock_for_transaction
from services.registry.models import (
    CompetitionRow,
    LeaderboardEntryRow,
    PublicFileRow,
    SplitMemberRow,
)
from services.registry.records import (
    Answers,
    CompetitionRecord,
    DataStatus,
    LeaderboardEntry,
    Metric,
    PublicFile,
    Source,
)


def replace_competition(session: Session, record: CompetitionRecord) -> None:
    """Writes `record`, replacing any earlier import of the same id."""
    lock_for_transaction(session, f"registry.competition:{record.id}")
    for child in (LeaderboardEntryRow, PublicFileRow, SplitMemberRow):
        session.execute(delete(child).where(child.competition_id == record.id))
    session.execute(delete(CompetitionRow).where(CompetitionRow.id == record.id))
    answers = record.answers
    competition = dict(
        id=record.id,
        name=record.name,
        source=record.source.value,
        category=record.category,
        complexity=record.complexity,
        awards_medals=record.awards_medals,
        metric_name=record.metric.name,
        metric_params=dict(record.metric.params),
        lower_is_better=record.lower_is_better,
        id_columns=list(record.id_columns),
        target_columns=list(record.target_columns),
        description=record.description,
        description_obfuscated=record.description_obfuscated,
        data_status=record.data_status.value,
        data_status_reason=record.data_status_reason,
        answers_path=answers.path if answers else "",
        answers_format=answers.format if answers else "",
        answers_size_bytes=answers.size_bytes if answers else 0,
        answers_sha256=answers.sha256 if answers else "",
        bundle_digest=record.bundle_digest,
        public_data_size_bytes=sum(f.size_bytes for f in record.public_files),
        public_listing_digest=public_listing_digest(
            (f.path, f.size_bytes, f.sha256) for f in record.public_files
        ),
        public_file_count=len(record.public_files),
        leaderboard_size=len(record.leaderboard),
        leaderboard_state=record.leaderboard_status().value,
        checksums_skipped=record.checksums_skipped,
        notes=list(record.notes),
        imported_at=record.imported_at,
    )
    check_fits(CompetitionRow, competition, "competition")
    session.add(CompetitionRow(**competition))
    session.flush()
    rows_by_table = (
        (
            LeaderboardEntryRow,
            [
                {
                    "competition_id": record.id,
                    "position": e.position,
                    "score": e.score,
                    "team_name": e.team_name,
                    "extra": e.extra,
                }
                for e in record.leaderboard
            ],
        ),
        (
            PublicFileRow,
            [
                {
                    "competition_id": record.id,
                    "path": f.path,
                    "size_bytes": f.size_bytes,
                    "sha256": f.sha256,
                }
                for f in record.public_files
            ],
        ),
        (
            SplitMemberRow,
            [{"competition_id": record.id, "split": s} for s in sorted(set(record.splits))],
        ),
    )
    for table, rows in rows_by_table:
        for row in rows:
            check_fits(table, row, table.__tablename__)
        if rows:
            session.execute(insert(table), rows)


def _to_record(row: CompetitionRow, splits: list[str]) -> CompetitionRecord:
    answers = None
    if row.answers_path:
        answers = Answers(
            row.answers_path, row.answers_format, row.answers_size_bytes, row.answers_sha256
        )
    return CompetitionRecord(
        id=row.id,
        name=row.name,
        source=Source(row.source),
        metric=Metric(row.metric_name, dict(row.metric_params)),
        description=row.description,
        description_obfuscated=row.description_obfuscated,
        category=row.category,
        complexity=row.complexity,
        awards_medals=row.awards_medals,
        lower_is_better=row.lower_is_better,
        id_columns=list(row.id_columns),
        target_columns=list(row.target_columns),
        splits=splits,
        data_status=DataStatus(row.data_status),
        data_status_reason=row.data_status_reason,
        answers=answers,
        checksums_skipped=row.checksums_skipped,
        notes=list(row.notes),
        imported_at=row.imported_at,
        bundle_digest=row.bundle_digest,
        leaderboard_size=row.leaderboard_size,
        leaderboard_state=row.leaderboard_state,
        public_data_size_bytes=row.public_data_size_bytes,
        public_listing_digest=row.public_listing_digest,
        public_file_count=row.public_file_count,
    )


def _splits_of(session: Session, ids: list[str]) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = defaultdict(list)
    if ids:
        query = select(SplitMemberRow).where(SplitMemberRow.competition_id.in_(ids))
        for member in session.scalars(query):
            splits[member.competition_id].append(member.split)
    return splits


def _filtered(
    query: Select, *, split: str = "", category: str = "", complexity: str = ""
) -> Select:
    if split:
        members = select(SplitMemberRow.competition_id).where(SplitMemberRow.split == split)
        query = query.where(CompetitionRow.id.in_(members))
    if category:
        query = query.where(func.lower(CompetitionRow.category) == category.lower())
    if complexity:
        query = query.where(CompetitionRow.complexity == complexity)
    return query


def list_competitions(
    session: Session,
    *,
    split: str = "",
    category: str = "",
    complexity: str = "",
    after_id: str = "",
    limit: int,
) -> tuple[list[CompetitionRecord], int]:
    """Up to `limit` competitions with ids after `after_id`, and how many match in all."""
    filters = {"split": split, "category": category, "complexity": complexity}
    total = session.scalar(_filtered(select(func.count(CompetitionRow.id)), **filters)) or 0
    query = _filtered(select(CompetitionRow), **filters).order_by(CompetitionRow.id).limit(limit)
    if after_id:
        query = query.where(CompetitionRow.id > after_id)
    rows = list(session.scalars(query))
    splits = _splits_of(session, [r.id for r in rows])
    return [_to_record(r, sorted(splits[r.id])) for r in rows], total


def get_competition(session: Session, competition_id: str) -> CompetitionRecord | None:
    row = session.get(CompetitionRow, competition_id)
    if row is None:
        return None
    return _to_record(row, sorted(_splits_of(session, [row.id])[row.id]))


def public_files(
    session: Session, competition_id: str, *, after_path: str = "", limit: int | None = None
) -> list[PublicFile]:
    """The files in the database's path order; a page of them with `after_path`/`limit`."""
    query = (
        select(PublicFileRow.path, PublicFileRow.size_bytes, PublicFileRow.sha256)
        .where(PublicFileRow.competition_id == competition_id)
        .order_by(PublicFileRow.path)
        .limit(limit)
    )
    if after_path:
        query = query.where(PublicFileRow.path > after_path)
    return [PublicFile(*row) for row in session.execute(query)]


def leaderboard(session: Session, competition_id: str) -> list[LeaderboardEntry]:
    query = (
        select(LeaderboardEntryRow)
        .where(LeaderboardEntryRow.competition_id == competition_id)
        .order_by(LeaderboardEntryRow.position)
    )
    return [
        LeaderboardEntry(r.position, r.score, r.team_name, dict(r.extra))
        for r in session.scalars(query)
    ]


def split_members(session: Session) -> dict[str, list[str]]:
    members: dict[str, list[str]] = defaultdict(list)
    query = select(SplitMemberRow).order_by(SplitMemberRow.split, SplitMemberRow.competition_id)
    for row in session.scalars(query):
        members[row.split].append(row.competition_id)
    return members
