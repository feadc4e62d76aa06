"""RegistryCore: the registry's behaviour in plain Python (no grpc), used by the servicer."""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import structlog
from mleb.ranking import Ranking, rank_score
from mleb.splits import SPLIT_ALIASES, canonical_split, split_sort_key
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.common.errors import FailedPreconditionError, NotFoundError, invalid_field
from services.common.redact import redact_server_paths
from services.common.settings import Settings
from services.registry import store
from services.registry.records import (
    COMPETITION_ID_PATTERN,
    COMPLEXITIES,
    CompetitionRecord,
    DataStatus,
    FileChunk,
    GradingBundleHeader,
    LeaderboardEntry,
    Page,
    PublicFile,
    PublicFilesPage,
    Split,
)
from services.registry.storage import CompetitionStorage, check_relative_path

log = structlog.get_logger("mleb.registry")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_registry"

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A page of 10,000 files is about 1 MB on the wire, well inside a client's message limit.
DEFAULT_FILES_PAGE_SIZE = 1000
MAX_FILES_PAGE_SIZE = 10_000
# Well under gRPC's 4 MiB default message limit.
DEFAULT_CHUNK_BYTES = 1 << 20


def open_database(database_url: str) -> Engine:
    """Connects and brings the registry's tables up to date."""
    engine = db.create_db_engine(database_url)
    db.run_migrations(engine, MIGRATIONS_DIR, VERSION_TABLE)
    return engine


class RegistryCore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        storage: CompetitionStorage,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        engine: Engine | None = None,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.chunk_bytes = chunk_bytes
        self._engine = engine

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryCore:
        engine = open_database(settings.database_url)
        return cls(
            db.create_session_factory(engine), CompetitionStorage(settings.data_dir), engine=engine
        )

    def close(self) -> None:
        """Releases the database connections this core opened itself."""
        if self._engine is not None:
            self._engine.dispose()

    # Listing

    def list_competitions(
        self,
        *,
        split: str = "",
        category: str = "",
        complexity: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> Page:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise invalid_field("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
        limit = page_size or DEFAULT_PAGE_SIZE
        if complexity and complexity not in COMPLEXITIES:
            raise invalid_field("complexity", f"must be one of {', '.join(COMPLEXITIES)}")
        split = canonical_split(split) if split else ""
        filters = {"split": split, "category": category, "complexity": complexity}
        after_id = _decode_page_token(page_token, filters)[0] if page_token else ""
        with self.sessions() as session:
            if split and split not in SPLIT_ALIASES and split not in store.split_members(session):
                raise invalid_field("split", f"unknown split {split!r}")
            records, total = store.list_competitions(
                session, **filters, after_id=after_id, limit=limit + 1
            )
        next_token = ""
        if len(records) > limit:
            records = records[:limit]
            next_token = _encode_page_token(records[-1].id, filters)
        return Page(records, next_token, total)

    def list_splits(self) -> list[Split]:
        with self.sessions() as session:
            members = store.split_members(session)
        return [
            Split(name, SPLIT_ALIASES.get(name, ()), tuple(members[name]))
            for name in sorted(members, key=split_sort_key)
        ]

    # One competition

    def get_competition(
        self, competition_id: str, *, obfuscated: bool = False, with_files: bool = True
    ) -> CompetitionRecord:
        """The competition, with its public file list unless told otherwise; `description`
        holds the variant asked for."""
        record = self._record(competition_id)
        if obfuscated:
            if record.description_obfuscated is None:
                raise FailedPreconditionError(
                    f"competition {competition_id!r} has no obfuscated description",
                    reason="NO_OBFUSCATED_DESCRIPTION",
                    metadata={"competition_id": competition_id},
                )
            record.description = record.description_obfuscated
        if with_files:
            with self.sessions() as session:
                record.public_files = store.public_files(session, competition_id)
        return record

    def list_public_files(
        self, competition_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> PublicFilesPage:
        """A page of the public files in path order, from one listing: a token issued
        before the competition was imported again is refused."""
        if page_size < 0 or page_size > MAX_FILES_PAGE_SIZE:
            raise invalid_field("page_size", f"must be between 0 and {MAX_FILES_PAGE_SIZE}")
        limit = page_size or DEFAULT_FILES_PAGE_SIZE
        record = self._record(competition_id)
        filters = {"public_files_of": record.id}
        after_path, listing = _decode_page_token(page_token, filters) if page_token else ("", "")
        if page_token and listing != record.public_listing_digest:
            raise FailedPreconditionError(
                f"the public files of {record.id!r} changed since the first page was listed; "
                "list them again from the first page",
                reason="PUBLIC_LISTING_CHANGED",
                metadata={"competition_id": record.id},
            )
        with self.sessions() as session:
            files = store.public_files(session, record.id, after_path=after_path, limit=limit + 1)
        next_token = ""
        if len(files) > limit:
            files = files[:limit]
            next_token = _encode_page_token(
                files[-1].path, filters, listing=record.public_listing_digest
            )
        return PublicFilesPage(files, next_token, record.public_listing_digest)

    def get_leaderboard(self, competition_id: str) -> tuple[CompetitionRecord, Ranking]:
        """The competition with its leaderboard, and the medal thresholds that implies."""
        record = self._record(competition_id)
        with self.sessions() as session:
            record.leaderboard = store.leaderboard(session, competition_id)
        return record, leaderboard_thresholds(record.leaderboard, record.lower_is_better)

    # Data

    def iter_public_file_chunks(
        self, competition_id: str, paths: list[str] | None = None
    ) -> Iterator[FileChunk]:
        """Streams the requested public files (all when `paths` is empty) chunk by chunk.

        Everything is checked before the first chunk, so a bad path fails the whole request.
        """
        record = self._prepared_record(competition_id)
        with self.sessions() as session:
            index = store.public_files(session, competition_id)
        files = _select_files(index, paths or [])
        real_paths = self.storage.resolve_public_files(record.id, [f.path for f in files], "paths")
        return self._chunks(list(zip(files, real_paths, strict=True)))

    def _chunks(self, located: list[tuple[PublicFile, Path]]) -> Iterator[FileChunk]:
        for entry, real_path in located:
            for offset, data, last in self._read_chunks(real_path, entry.size_bytes):
                yield FileChunk(entry.path, entry.size_bytes, entry.sha256, offset, data, last)

    def grading_bundle(
        self, competition_id: str, known_digest: str = ""
    ) -> tuple[GradingBundleHeader, Iterator[bytes]]:
        """The grading header and, unless the caller holds `known_digest`, the answer bytes."""
        record = self._prepared_record(competition_id)
        assert record.answers is not None  # prepared competitions always have answers
        not_modified = bool(known_digest) and known_digest == record.bundle_digest
        # The digest covers the leaderboard too: a caller holding it needs no rows again.
        leaderboard: list[LeaderboardEntry] = []
        if not not_modified:
            with self.sessions() as session:
                leaderboard = store.leaderboard(session, competition_id)
        header = GradingBundleHeader(
            competition_id=record.id,
            digest=record.bundle_digest,
            not_modified=not_modified,
            metric=record.metric,
            answers=record.answers,
            leaderboard=leaderboard,
            lower_is_better=record.lower_is_better,
            awards_medals=record.awards_medals,
            leaderboard_state=record.leaderboard_status(),
            id_columns=record.id_columns,
            target_columns=record.target_columns,
        )
        if not_modified:
            return header, iter(())
        path = self.storage.private_dir(record.id) / record.answers.path
        chunks = (data for _, data, _ in self._read_chunks(path, record.answers.size_bytes))
        return header, chunks

    # Helpers

    def _record(self, competition_id: str) -> CompetitionRecord:
        if not competition_id:
            raise invalid_field("competition_id", "a competition id is required")
        record = None
        if COMPETITION_ID_PATTERN.match(competition_id):
            with self.sessions() as session:
                record = store.get_competition(session, competition_id)
        if record is None:
            raise NotFoundError(
                f"no competition {competition_id[:200]!r}",
                reason="COMPETITION_NOT_FOUND",
                metadata={"competition_id": competition_id[:200]},
            )
        return record

    def _prepared_record(self, competition_id: str) -> CompetitionRecord:
        record = self._record(competition_id)
        if record.data_status is not DataStatus.PREPARED:
            # The stored reason may name the operator's paths (imports before they were kept
            # out): the log keeps it whole, the caller reads it without them.
            log.info(
                "no_prepared_data",
                competition_id=competition_id,
                reason=record.data_status_reason,
                data_dir=str(self.storage.competition_dir(competition_id)),
            )
            raise FailedPreconditionError(
                f"competition {competition_id!r} has metadata only, no prepared data: "
                f"{redact_server_paths(record.data_status_reason)}",
                reason="NO_PREPARED_DATA",
                metadata={"competition_id": competition_id},
            )
        return record

    def _read_chunks(self, path: Path, expected_size: int) -> Iterator[tuple[int, bytes, bool]]:
        """(offset, data, last) for one file; refuses a file that changed since import."""
        changed = FailedPreconditionError(
            f"{path.name} changed on disk since import; import the competition again",
            reason="DATA_CHANGED",
            metadata={"file": path.name},
        )
        try:
            # A link planted after the path was checked is refused here (ELOOP).
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise changed from exc
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise changed from exc
        # Unbuffered reads: most public files fit in one chunk.
        with os.fdopen(fd, "rb", buffering=0) as handle:
            if os.fstat(fd).st_size != expected_size:
                raise changed
            offset = 0
            while True:
                data = handle.read(self.chunk_bytes)
                last = offset + len(data) >= expected_size
                if not data and not last:
                    raise changed
                yield offset, data, last
                offset += len(data)
                if last:
                    return


def leaderboard_thresholds(entries: list[LeaderboardEntry], lower_is_better: bool) -> Ranking:
    scores = [e.score if e.score is not None else float("nan") for e in entries]
    return rank_score(None, scores, lower_is_better=lower_is_better)


def _select_files(index: list[PublicFile], paths: list[str]) -> list[PublicFile]:
    """Files named by `paths`: a file's own path, or a folder meaning every file below it."""
    if not paths:
        return index
    by_path = {f.path: f for f in index}
    chosen: dict[str, PublicFile] = {}
    for position, raw in enumerate(paths):
        field_name = f"paths[{position}]"
        path = check_relative_path(raw, field_name)
        if path in by_path:
            chosen[path] = by_path[path]
            continue
        below = [f for f in index if f.path.startswith(path + "/")]
        if not below:
            raise NotFoundError(
                f"no public file or folder {raw[:200]!r}",
                reason="PUBLIC_FILE_NOT_FOUND",
                metadata={"path": raw[:200]},
            )
        chosen.update((f.path, f) for f in below)
    return list(chosen.values())


def _filters_digest(filters: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _encode_page_token(after: str, filters: dict[str, str], *, listing: str = "") -> str:
    """An opaque token: where the next page starts, for which filters, and (for file
    listings) which listing it belongs to."""
    fields = {"after": after, "filters": _filters_digest(filters), "listing": listing}
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


def _decode_page_token(token: str, filters: dict[str, str]) -> tuple[str, str]:
    """(after, listing) from a token `_encode_page_token` issued for `filters`."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after, digest = payload["after"], payload["filters"]
        listing = payload.get("listing", "")
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError, AttributeError) as exc:
        raise invalid_field("page_token", "not a token this registry issued") from exc
    if not isinstance(after, str) or not isinstance(listing, str):
        raise invalid_field("page_token", "not a token this registry issued")
    if digest != _filters_digest(filters):
        raise invalid_field("page_token", "was issued for different filters")
    return after, listing
