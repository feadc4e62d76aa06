"""Reading the files importers meet: Git LFS pointers, leaderboards, answers."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from services.common.errors import FailedPreconditionError, InvalidArgumentError
from services.registry.records import LeaderboardEntry

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"

# Columns that hold a leaderboard's team name, in order of preference. Kaggle's exports
# (as MLE-bench ships them) have only a teamId.
_TEAM_COLUMNS = ("team_name", "teamName", "TeamName", "team", "teamId")


def is_lfs_pointer(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX


def is_lfs_pointer_content(content: bytes) -> bool:
    return content.startswith(LFS_POINTER_PREFIX)


def lfs_pointer_error(path: Path, repo: Path) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"{path} is a Git LFS pointer, not the file's content; run `git lfs pull` in {repo}",
        reason="GIT_LFS_POINTER",
        metadata={"file": str(path)},
    )


def _parse_score(raw: str | None) -> float | None:
    text = (raw or "").strip()
    if text == "" or text.lower() in {"nan", "null", "none"}:
        return None
    value = float(text)
    return None if math.isnan(value) else value


def read_leaderboard(path: Path, content: str | None = None) -> list[LeaderboardEntry]:
    """Reads a best-first leaderboard CSV with at least a `score` column.

    With `content`, parses that text (read safely by the caller) and uses `path` only to name
    the file in errors.
    """
    if content is None:
        content = path.read_bytes().decode("utf-8")
    with io.StringIO(content, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "score" not in columns:
            raise InvalidArgumentError(
                f"{path}: no 'score' column (columns: {', '.join(columns) or 'none'})",
                reason="LEADERBOARD_INVALID",
                metadata={"file": str(path), "field": "score"},
            )
        team_column = next((c for c in _TEAM_COLUMNS if c in columns), None)
        entries = []
        for position, row in enumerate(reader, start=1):
            try:
                score = _parse_score(row["score"])
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"{path}: row {position}: score {row['score']!r} is not a number",
                    reason="LEADERBOARD_INVALID",
                    metadata={"file": str(path), "field": "score", "row": str(position)},
                ) from exc
            extra = {
                k: v or ""
                for k, v in row.items()
                if k not in {"score", team_column} and k is not None
            }
            team = (row.get(team_column) or "") if team_column else ""
            entries.append(LeaderboardEntry(position, score, team, extra))
    return entries


def answers_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in {"csv", "jsonl"}:
        raise InvalidArgumentError(
            f"{path}: answers must be a .csv or .jsonl file",
            reason="ANSWERS_FORMAT",
            metadata={"file": str(path)},
        )
    return suffix
