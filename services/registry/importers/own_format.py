"""Imports a competition in mleb's own format (see docs/registry.md).

A folder holding competition.yaml, description.md (and optionally description_obfuscated.md),
leaderboard.csv, public/ and private/. Every problem found is reported at once, each naming
its file and field.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from mleb.ranking import is_lower_better
from mleb.splits import canonical_split

from services.common.errors import FieldViolation, InvalidArgumentError, MlebError
from services.registry.importers.beneath import (
    is_dir_beneath,
    is_file_beneath,
    read_bytes_beneath,
    read_text_beneath,
)
from services.registry.importers.files import is_lfs_pointer_content, read_leaderboard
from services.registry.importers.install import CompetitionInstaller, ImportResult, ImportStatus
from services.registry.records import (
    COMPETITION_ID_PATTERN,
    COMPLEXITIES,
    CompetitionRecord,
    LeaderboardEntry,
    Metric,
    Source,
)
from services.registry.storage import check_relative_path

CONFIG_FILE = "competition.yaml"
# A handful of short fields: anything near this is not a configuration, and PyYAML is slow
# on big scalars (about 45 s for a 50 MB one).
MAX_CONFIG_BYTES = 1 << 20
_KNOWN_FIELDS = {
    "id",
    "name",
    "metric",
    "id_columns",
    "target_columns",
    "answers",
    "sample_submission",
    "lower_is_better",
    "category",
    "complexity",
    "awards_medals",
    "splits",
}


class _Problems:
    """Collects violations as "file: field" pairs so the user can fix them all in one go."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, file: str, field: str, description: str) -> None:
        self.violations.append(FieldViolation(f"{file}:{field}" if field else file, description))

    def raise_if_any(self, folder: Path) -> None:
        if self.violations:
            lines = "\n".join(f"  {v.field}: {v.description}" for v in self.violations)
            raise InvalidArgumentError(
                f"{folder} is not a valid competition:\n{lines}",
                reason="COMPETITION_INVALID",
                metadata={"folder": str(folder)},
                violations=self.violations,
            )


def import_competition(installer: CompetitionInstaller, folder: Path) -> ImportResult:
    """Validates `folder` and imports it, replacing an earlier import of the same id."""
    record, answers = validate_competition(folder)
    with installer.storage.staging(folder) as staged:
        installer.install(record, staged, answers)
    return ImportResult(record.id, ImportStatus.PREPARED, record.notes)


def validate_competition(folder: Path) -> tuple[CompetitionRecord, str]:
    """The competition's record and its answers path inside private/, or every problem."""
    problems = _Problems()
    if not folder.is_dir():
        problems.add(str(folder), "", "not a folder")
        problems.raise_if_any(folder)
    config = _load_config(folder, problems)
    problems.raise_if_any(folder)

    def text(key: str, *, required: bool) -> str:
        value = config.get(key)
        if value is None or value == "":
            if required:
                problems.add(CONFIG_FILE, key, "required")
            return ""
        if not isinstance(value, str):
            problems.add(CONFIG_FILE, key, f"must be a string, got {type(value).__name__}")
            return ""
        return value.strip()

    def flag(key: str, default: bool | None) -> bool | None:
        value = config.get(key, default)
        if value is not None and not isinstance(value, bool):
            problems.add(CONFIG_FILE, key, "must be true or false")
            return default
        return value

    for key in sorted(set(config) - _KNOWN_FIELDS):
        problems.add(CONFIG_FILE, key, "unknown field")
    competition_id = text("id", required=True)
    if competition_id and not COMPETITION_ID_PATTERN.match(competition_id):
        problems.add(CONFIG_FILE, "id", "use letters, digits, '.', '_' and '-' (at most 128)")
    name = text("name", required=True)
    metric = _metric(config.get("metric"), problems)
    id_columns = _columns(config, "id_columns", problems)
    target_columns = _columns(config, "target_columns", problems)
    answers = _data_file(folder, "private", text("answers", required=True), "answers", problems)
    _data_file(
        folder, "public", text("sample_submission", required=True), "sample_submission", problems
    )
    complexity = text("complexity", required=False).lower()
    if complexity and complexity not in COMPLEXITIES:
        problems.add(CONFIG_FILE, "complexity", f"must be one of {', '.join(COMPLEXITIES)}")
    splits = _splits(config.get("splits"), problems)
    lower_is_better = flag("lower_is_better", None)
    awards_medals = flag("awards_medals", True)
    description = _markdown(folder, "description.md", problems, required=True)
    obfuscated = _markdown(folder, "description_obfuscated.md", problems, required=False)
    leaderboard = _leaderboard(folder, "leaderboard.csv", lower_is_better, problems)
    problems.raise_if_any(folder)

    if lower_is_better is None:
        # _leaderboard returns entries only when every row has a score.
        lower_is_better = is_lower_better([e.score for e in leaderboard if e.score is not None])
    record = CompetitionRecord(
        id=competition_id,
        name=name,
        source=Source.MLEB,
        metric=metric,
        description=description or "",
        description_obfuscated=obfuscated,
        category=text("category", required=False),
        complexity=complexity,
        awards_medals=bool(awards_medals),
        lower_is_better=lower_is_better,
        id_columns=id_columns,
        target_columns=target_columns,
        splits=sorted({*splits, *([complexity] if complexity else [])}),
        leaderboard=leaderboard,
    )
    return record, answers


def _load_config(folder: Path, problems: _Problems) -> dict[str, Any]:
    try:
        text = read_text_beneath(folder, CONFIG_FILE, limit=MAX_CONFIG_BYTES)
    except MlebError as exc:
        problems.add(CONFIG_FILE, "", exc.message)
        return {}
    if text is None:
        problems.add(CONFIG_FILE, "", "missing")
        return {}
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.add(CONFIG_FILE, "", f"not valid YAML: {exc}")
        return {}
    if not isinstance(config, dict):
        problems.add(CONFIG_FILE, "", "must be a mapping of fields")
        return {}
    return config


def _metric(value: Any, problems: _Problems) -> Metric:
    if isinstance(value, str) and value.strip():
        return Metric(value.strip())
    if not isinstance(value, dict):
        problems.add(CONFIG_FILE, "metric", "required: a name, or a mapping with name and params")
        return Metric("")
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(CONFIG_FILE, "metric.name", "required")
        name = ""
    params = value.get("params") or {}
    if not isinstance(params, dict):
        problems.add(CONFIG_FILE, "metric.params", "must be a mapping")
        params = {}
    for key, param in params.items():
        if isinstance(param, dict | list):
            problems.add(CONFIG_FILE, f"metric.params.{key}", "must be a single value")
    unknown = sorted(set(value) - {"name", "params"})
    for key in unknown:
        problems.add(CONFIG_FILE, f"metric.{key}", "unknown field")
    return Metric(name.strip(), {str(k): _param_text(v) for k, v in params.items()})


def _param_text(value: Any) -> str:
    # YAML true/false become the lowercase strings a reader would have typed.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _columns(config: dict[str, Any], key: str, problems: _Problems) -> list[str]:
    value = config.get(key)
    columns = [value] if isinstance(value, str) else value
    if (
        not isinstance(columns, list)
        or not columns
        or not all(isinstance(c, str) and c for c in columns)
    ):
        problems.add(CONFIG_FILE, key, "required: a column name or a list of column names")
        return []
    return columns


def _splits(value: Any, problems: _Problems) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        problems.add(CONFIG_FILE, "splits", "must be a list of split names")
        return []
    return [canonical_split(s) for s in value]


def _data_file(folder: Path, side: str, relative: str, key: str, problems: _Problems) -> str:
    """Checks that `relative` names a file inside folder/side; returns it normalised."""
    if not relative:
        return ""
    try:
        normalised = check_relative_path(relative, key)
    except MlebError:
        problems.add(CONFIG_FILE, key, f"{relative!r} must be a plain path inside {side}/")
        return ""
    try:
        side_exists = is_dir_beneath(folder, side)
        is_file = side_exists and is_file_beneath(folder, f"{side}/{normalised}")
    except MlebError as exc:
        problems.add(CONFIG_FILE, key, exc.message)
        return normalised
    if not side_exists:
        problems.add(f"{side}/", "", "missing folder")
    elif not is_file:
        problems.add(CONFIG_FILE, key, f"{side}/{normalised} is not a file")
    elif key == "answers" and PurePosixPath(normalised).suffix.lower() not in {".csv", ".jsonl"}:
        problems.add(CONFIG_FILE, key, "must be a .csv or .jsonl file")
    return normalised


def _markdown(folder: Path, name: str, problems: _Problems, *, required: bool) -> str | None:
    try:
        content = read_text_beneath(folder, name)
    except MlebError as exc:
        problems.add(name, "", exc.message)
        return None
    if content is None:
        if required:
            problems.add(name, "", "missing")
        return None
    if not content.strip():
        problems.add(name, "", "empty")
    return content


def _leaderboard(
    folder: Path, name: str, lower_is_better: bool | None, problems: _Problems
) -> list[LeaderboardEntry]:
    path = folder / name
    try:
        content = read_bytes_beneath(folder, name)
    except MlebError as exc:
        problems.add(name, "", exc.message)
        return []
    if content is None:
        problems.add(path.name, "", "missing")
        return []
    if is_lfs_pointer_content(content):
        problems.add(path.name, "", "is a Git LFS pointer; run `git lfs pull` first")
        return []
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.add(name, "", f"not UTF-8 text (invalid byte at offset {exc.start})")
        return []
    try:
        entries = read_leaderboard(path, text)
    except MlebError as exc:
        problems.add(path.name, exc.metadata.get("field", ""), exc.message)
        return []
    scores = [e.score for e in entries]
    if not scores:
        problems.add(path.name, "score", "at least one row is required")
        return []
    missing = next((e.position for e in entries if e.score is None), None)
    if missing is not None:
        problems.add(path.name, "score", f"row {missing} has no score")
        return []
    known = [s for s in scores if s is not None]  # all of them, as just checked
    lower = is_lower_better(known) if lower_is_better is None else lower_is_better
    ordered = all((a <= b) if lower else (a >= b) for a, b in itertools.pairwise(known))
    if not ordered or any(math.isinf(s) for s in known):
        direction = "ascending (lower is better)" if lower else "descending (higher is better)"
        problems.add(path.name, "score", f"scores must be finite and best first: {direction}")
    return entries
