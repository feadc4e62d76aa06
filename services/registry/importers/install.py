"""Writing an imported competition: its files into storage, its record into the database."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import FailedPreconditionError
from services.registry import store
from services.registry.importers.files import answers_format
from services.registry.records import (
    Answers,
    CompetitionRecord,
    DataStatus,
    LeaderboardEntry,
    Metric,
    PublicFile,
)
from services.registry.storage import CompetitionStorage, StagedData


class ImportStatus(enum.StrEnum):
    PREPARED = "prepared"
    METADATA_ONLY = "metadata_only"
    FAILED = "failed"


@dataclass
class ImportResult:
    competition_id: str
    status: ImportStatus
    notes: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class ImportReport:
    results: list[ImportResult] = field(default_factory=list)
    # Problems with the source as a whole (an LFS split file, a missing categories file).
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ImportResult]:
        return [r for r in self.results if r.status is ImportStatus.FAILED]


def bundle_digest(
    answers_sha256: str,
    leaderboard: list[LeaderboardEntry],
    metric: Metric,
    *,
    lower_is_better: bool,
    awards_medals: bool,
    id_columns: Sequence[str] = (),
    target_columns: Sequence[str] = (),
    leaderboard_state: str = "",
) -> str:
    """Content address of everything a grader caches: it changes exactly when grading would."""
    described = {
        "answers_sha256": answers_sha256,
        "leaderboard": [[e.position, e.score, e.team_name] for e in leaderboard],
        "metric": {"name": metric.name, "params": dict(sorted(metric.params.items()))},
        "lower_is_better": lower_is_better,
        "awards_medals": awards_medals,
        # Metric-named competitions are graded by these columns.
        "columns": [list(id_columns), list(target_columns)],
    }
    # Graders cache what the header says about the leaderboard too; only a missing one
    # changes the digest, so digests of competitions with a leaderboard stay as they were.
    if leaderboard_state and leaderboard_state != "present":
        described["leaderboard_state"] = leaderboard_state
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class CompetitionInstaller:
    """Saves competitions so that readers see either the old or the new version."""

    def __init__(self, sessions: sessionmaker[Session], storage: CompetitionStorage) -> None:
        self.sessions = sessions
        self.storage = storage

    def install(
        self,
        record: CompetitionRecord,
        staged: StagedData | None,
        answers_path: str = "",
    ) -> None:
        """Stores `record`; with `staged`, its files too, answers at private/`answers_path`."""
        if staged is not None:
            answers = staged.private.get(answers_path)
            if answers is None:
                raise FailedPreconditionError(
                    f"answers file {answers_path!r} is not in the private data",
                    reason="ANSWERS_MISSING",
                    metadata={"competition_id": record.id, "file": answers_path},
                )
            if any(path.startswith("description.md/") for path in staged.public):
                # Sandboxes lay the description at data/description.md, over the public files.
                raise FailedPreconditionError(
                    "the public data has a folder named description.md, where each sandbox's "
                    "description goes; rename it",
                    reason="PUBLIC_DESCRIPTION_FOLDER",
                    metadata={"competition_id": record.id},
                )
            record.answers = Answers(
                answers.path,
                answers_format(staged.private_dir / answers.path),
                answers.size_bytes,
                answers.sha256,
            )
            record.public_files = [
                PublicFile(f.path, f.size_bytes, f.sha256) for f in staged.public.values()
            ]
            record.data_status = DataStatus.PREPARED
            record.data_status_reason = ""
            record.bundle_digest = bundle_digest(
                answers.sha256,
                record.leaderboard,
                record.metric,
                lower_is_better=record.lower_is_better,
                awards_medals=record.awards_medals,
                id_columns=record.id_columns,
                target_columns=record.target_columns,
                leaderboard_state=record.leaderboard_status().value,
            )
        record.imported_at = datetime.now(UTC)
        with self.sessions.begin() as session:
            store.replace_competition(session, record)
            # Files move only after the rows are written: a failed write leaves the old files.
            session.flush()
            self.storage.install(record.id, staged)
