"""Imports competitions from an MLE-bench checkout and, optionally, `mlebench prepare` output.

Reads mlebench/competitions/<id>/{config.yaml, description*.md, leaderboard.csv,
checksums.yaml}, experiments/splits/*.txt and experiments/competition_categories.csv; prepared
data comes from <data_dir>/<id>/prepared/{public,private}.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from mleb.ranking import LeaderboardState, is_lower_better
from mleb.splits import canonical_split

from services.common.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    MlebError,
    NotFoundError,
)
from services.registry.importers.beneath import (
    read_bytes_beneath,
    read_text_beneath,
)
from services.registry.importers.files import (
    is_lfs_pointer_content,
    lfs_pointer_error,
    read_leaderboard,
)
from services.registry.importers.install import (
    CompetitionInstaller,
    ImportReport,
    ImportResult,
    ImportStatus,
)
from services.registry.records import (
    COMPLEXITIES,
    CompetitionRecord,
    DataStatus,
    Metric,
    Source,
)
from services.registry.storage import StagedData


@dataclass(frozen=True)
class _RepoMetadata:
    splits: dict[str, set[str]]
    categories: dict[str, str]
    # Complexity from the categories file, for competitions in no low/medium/high split.
    complexities: dict[str, str]


def import_mlebench(
    installer: CompetitionInstaller,
    repo: Path,
    data_dir: Path | None = None,
    *,
    competitions: Sequence[str] = (),
    skip_checksums: bool = False,
) -> ImportReport:
    """Imports every competition folder (or those named), each on its own.

    A competition that cannot be imported (a checksum mismatch, a broken config) is reported
    as failed and the others still import.
    """
    competitions_dir = repo / "mlebench" / "competitions"
    if not competitions_dir.is_dir():
        raise InvalidArgumentError(
            f"{repo} is not an MLE-bench checkout: {competitions_dir} is missing",
            reason="NOT_MLEBENCH_REPO",
            metadata={"repo": str(repo)},
        )
    if data_dir is not None and not data_dir.is_dir():
        raise NotFoundError(f"data dir {data_dir} does not exist", metadata={"dir": str(data_dir)})
    available = sorted(p.parent.name for p in competitions_dir.glob("*/config.yaml"))
    unknown = sorted(set(competitions) - set(available))
    if unknown:
        raise NotFoundError(
            f"not in {competitions_dir}: {', '.join(unknown)}",
            reason="COMPETITION_NOT_FOUND",
            metadata={"competition_ids": ",".join(unknown)},
        )
    report = ImportReport()
    metadata = _read_repo_metadata(repo, report.warnings)
    for competition_id in [c for c in available if not competitions or c in competitions]:
        try:
            result = _import_one(
                installer,
                repo,
                competitions_dir / competition_id,
                data_dir,
                metadata,
                skip_checksums=skip_checksums,
            )
        except MlebError as exc:
            result = ImportResult(competition_id, ImportStatus.FAILED, error=exc.message)
        except OSError as exc:
            result = ImportResult(competition_id, ImportStatus.FAILED, error=str(exc))
        report.results.append(result)
    return report


def _read_repo_metadata(repo: Path, warnings: list[str]) -> _RepoMetadata:
    splits: dict[str, set[str]] = {}
    splits_dir = repo / "experiments" / "splits"
    if not splits_dir.is_dir():
        warnings.append(f"{splits_dir} is missing: no splits imported")
    for path in sorted(splits_dir.glob("*.txt")):
        content = read_bytes_beneath(repo, path.relative_to(repo).as_posix()) or b""
        if is_lfs_pointer_content(content):
            warnings.append(f"{lfs_pointer_error(path, repo).message}; split not imported")
            continue
        lines = _decode(content, path).splitlines()
        splits[canonical_split(path.stem)] = {
            line.strip() for line in lines if line.strip() and not line.startswith("#")
        }
    categories: dict[str, str] = {}
    complexities: dict[str, str] = {}
    categories_path = repo / "experiments" / "competition_categories.csv"
    categories_content = read_bytes_beneath(repo, "experiments/competition_categories.csv")
    if categories_content is None:
        warnings.append(f"{categories_path} is missing: no categories imported")
    elif is_lfs_pointer_content(categories_content):
        warnings.append(
            f"{lfs_pointer_error(categories_path, repo).message}; no categories imported"
        )
    else:
        text = _decode(categories_content, categories_path)
        with io.StringIO(text, newline="") as handle:
            for row in csv.DictReader(handle):
                competition_id = (row.get("competition_id") or "").strip()
                categories[competition_id] = (row.get("category") or "").strip()
                complexities[competition_id] = (row.get("Complexity") or "").strip().lower()
    return _RepoMetadata(splits, categories, complexities)


def _decode(content: bytes, path: Path) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"{path}: not UTF-8 text (invalid byte at offset {exc.start})", reason="NOT_UTF8"
        ) from None


def _load_config(repo: Path, path: Path) -> dict[str, Any]:
    text = read_text_beneath(repo, path.relative_to(repo).as_posix())
    if text is None:
        raise InvalidArgumentError(f"{path}: missing", reason="CONFIG_INVALID")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(
            f"{path}: not valid YAML: {exc}", reason="CONFIG_INVALID"
        ) from exc
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"{path}: expected a mapping", reason="CONFIG_INVALID")
    missing = [
        key
        for key, value in (
            ("id", config.get("id")),
            ("name", config.get("name")),
            ("grader.name", (config.get("grader") or {}).get("name")),
            ("dataset.answers", (config.get("dataset") or {}).get("answers")),
        )
        if not isinstance(value, str) or not value
    ]
    if missing:
        raise InvalidArgumentError(
            f"{path}: missing or empty field(s): {', '.join(missing)}",
            reason="CONFIG_INVALID",
            metadata={"file": str(path), "fields": ",".join(missing)},
        )
    if config["id"] != path.parent.name:
        raise InvalidArgumentError(
            f"{path}: id {config['id']!r} differs from its folder name {path.parent.name!r}",
            reason="CONFIG_INVALID",
            metadata={"file": str(path), "field": "id"},
        )
    return config


def _import_one(
    installer: CompetitionInstaller,
    repo: Path,
    folder: Path,
    data_dir: Path | None,
    metadata: _RepoMetadata,
    *,
    skip_checksums: bool,
) -> ImportResult:
    config = _load_config(repo, folder / "config.yaml")
    competition_id = config["id"]
    notes: list[str] = []
    record = CompetitionRecord(
        id=competition_id,
        name=config["name"],
        source=Source.MLEBENCH,
        metric=Metric(config["grader"]["name"]),
        description=_read_description(repo, folder, config),
        description_obfuscated=_read_optional(repo, folder / "description_obfuscated.md"),
        category=metadata.categories.get(competition_id, ""),
        awards_medals=bool(config.get("awards_medals", True)),
        splits=sorted(name for name, ids in metadata.splits.items() if competition_id in ids),
    )
    record.complexity = next(
        (c for c in COMPLEXITIES if c in record.splits),
        metadata.complexities.get(competition_id, ""),
    )
    if record.complexity not in COMPLEXITIES:
        record.complexity = ""
    _attach_leaderboard(record, repo, folder / "leaderboard.csv", notes)

    answers_relative = _answers_in_private(config, folder)
    prepared = data_dir / competition_id / "prepared" if data_dir else None
    missing_reason = _missing_data_reason(prepared, answers_relative, competition_id)
    if missing_reason:
        record.data_status = DataStatus.METADATA_ONLY
        record.data_status_reason = missing_reason
        record.notes = [*notes, f"metadata only: {missing_reason}"]
        installer.install(record, None)
        return ImportResult(competition_id, ImportStatus.METADATA_ONLY, record.notes)

    assert prepared is not None
    assert data_dir is not None
    shown = f"{competition_id}/prepared"
    with installer.storage.staging(data_dir, f"{shown}/public", f"{shown}/private") as staged:
        if skip_checksums:
            record.checksums_skipped = True
            notes.append("checksums not verified (--skip-checksums)")
        else:
            notes.extend(_verify_checksums(repo, folder / "checksums.yaml", prepared, staged))
        record.notes = notes
        installer.install(record, staged, answers_relative)
    return ImportResult(competition_id, ImportStatus.PREPARED, notes)


def _read_description(repo: Path, folder: Path, config: dict[str, Any]) -> str:
    # config.yaml names the description relative to the repository root.
    named = config.get("description")
    path = (repo / named) if isinstance(named, str) and named else folder / "description.md"
    relative = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else ".."
    text = None if ".." in PurePosixPath(relative).parts else read_text_beneath(repo, relative)
    if text is None:
        raise FailedPreconditionError(
            f"{folder / 'config.yaml'}: description {named!r} is not a file in {repo}",
            reason="DESCRIPTION_MISSING",
            metadata={"file": str(path)},
        )
    return text


def _read_optional(repo: Path, path: Path) -> str | None:
    return read_text_beneath(repo, path.relative_to(repo).as_posix())


def _attach_leaderboard(
    record: CompetitionRecord, repo: Path, path: Path, notes: list[str]
) -> None:
    """Reads the leaderboard, or records why there is none: a pointer is never data.

    The metric's direction comes from mleb's grading spec, never from whether a leaderboard
    is present; a leaderboard whose order contradicts the spec fails the import.
    """
    shown = path.relative_to(repo) if path.is_relative_to(repo) else path.name
    content = read_bytes_beneath(repo, path.relative_to(repo).as_posix())
    if content is None:
        record.leaderboard_state = LeaderboardState.MISSING
    elif is_lfs_pointer_content(content):
        record.leaderboard_state = LeaderboardState.LFS_POINTER
    else:
        record.leaderboard = read_leaderboard(path, _decode(content, path))
        record.leaderboard_state = (
            LeaderboardState.PRESENT if record.leaderboard else LeaderboardState.MISSING
        )
    if record.leaderboard_state is LeaderboardState.LFS_POINTER:
        notes.append(
            f"no leaderboard: {shown} is a Git LFS pointer, not the file's content; run "
            "`git lfs pull` in the MLE-bench checkout, then import again"
        )
    elif record.leaderboard_state is LeaderboardState.MISSING:
        notes.append(f"no leaderboard: {shown} is missing or has no rows")
    # As MLE-bench infers it: first against last row, even when one of them has no score.
    observed = (
        is_lower_better([math.nan if e.score is None else e.score for e in record.leaderboard])
        if record.leaderboard
        else None
    )
    declared = declared_lower_is_better(record.id)
    if declared is None:
        if observed is None:
            # Nothing ranks against it either: without a spec mleb cannot grade it.
            notes.append(
                "metric direction unknown: mleb has no grading spec for this competition and "
                "there is no leaderboard to infer it from; shown as higher is better"
            )
            return
        record.lower_is_better = observed
        notes.append(
            "metric direction inferred from the leaderboard's order (mleb has no grading spec "
            "for this competition)"
        )
        return
    record.lower_is_better = declared
    first, last = (
        (record.leaderboard[0].score, record.leaderboard[-1].score)
        if (record.leaderboard)
        else (None, None)
    )
    # Only a strict order says anything: equal or missing end scores infer "higher is better"
    # in MLE-bench without meaning it.
    if first is not None and last is not None and first != last and observed != declared:
        raise FailedPreconditionError(
            f"{record.id}: {shown} is ordered {_direction(observed)}, but mleb's grading spec "
            f"says {_direction(declared)}; check the leaderboard file (best team first) and "
            "the spec before importing",
            reason="DIRECTION_MISMATCH",
            metadata={
                "competition_id": record.id,
                "leaderboard_lower_is_better": str(observed).lower(),
                "spec_lower_is_better": str(declared).lower(),
            },
        )


def _direction(lower_is_better: bool | None) -> str:
    return "lower is better" if lower_is_better else "higher is better"


def declared_lower_is_better(competition_id: str) -> bool | None:
    """The direction mleb's grading spec declares for an MLE-bench competition, if it has one."""
    from services.grader.competitions import get_spec  # the specs pull in pandas and numpy

    spec = get_spec(competition_id)
    return None if spec is None else spec.lower_is_better


def _answers_in_private(config: dict[str, Any], folder: Path) -> str:
    """The answers path relative to the private folder; MLE-bench writes <id>/prepared/private/."""
    answers = config["dataset"]["answers"]
    prefix = f"{config['id']}/prepared/private/"
    if not answers.startswith(prefix) or ".." in answers.split("/"):
        raise InvalidArgumentError(
            f"{folder / 'config.yaml'}: dataset.answers {answers!r} is not under {prefix}",
            reason="CONFIG_INVALID",
            metadata={"file": str(folder / "config.yaml"), "field": "dataset.answers"},
        )
    return answers.removeprefix(prefix)


def _missing_data_reason(prepared: Path | None, answers: str, competition_id: str) -> str:
    """Why there is no prepared data. Clients see it, so it names paths only relative to the
    data dir, never the operator's own."""
    if prepared is None:
        return "no --data-dir given at import"
    shown = f"{competition_id}/prepared"
    for name in ("public", "private"):
        folder = prepared / name
        if not folder.is_dir() or not any(folder.iterdir()):
            return (
                f"{shown}/{name} is missing or empty in the data dir; run "
                f"`mlebench prepare -c {competition_id}`, then import again"
            )
    if not (prepared / "private" / answers).is_file():
        return (
            f"answers file {shown}/private/{answers} is missing in the data dir; prepare the "
            "competition again"
        )
    return ""


def _verify_checksums(repo: Path, path: Path, prepared: Path, staged: StagedData) -> list[str]:
    """Checks the copied files against MLE-bench's MD5s; returns notes, raises on a mismatch.

    The `zip` entry is the raw Kaggle archive, which prepared data does not include.
    """
    text = read_text_beneath(repo, path.relative_to(repo).as_posix())
    if text is None:
        return [f"{path} is missing: prepared files not verified"]
    try:
        expected = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(
            f"{path}: not valid YAML: {exc}", reason="CHECKSUMS_INVALID"
        ) from exc
    for section, copied in (("public", staged.public), ("private", staged.private)):
        entries = expected.get(section) or {}
        if not isinstance(entries, dict):
            raise InvalidArgumentError(
                f"{path}: {section} must map file names to MD5 sums", reason="CHECKSUMS_INVALID"
            )
        for name, md5 in sorted(entries.items()):
            source = prepared / section / str(name)
            actual = copied.get(str(name))
            if actual is None:
                raise FailedPreconditionError(
                    f"{source} is listed in {path} but missing",
                    reason="CHECKSUM_FILE_MISSING",
                    metadata={"file": str(source)},
                )
            if actual.md5 != str(md5):
                raise FailedPreconditionError(
                    f"checksum mismatch for {source}: expected MD5 {md5}, got {actual.md5}; "
                    "prepare the competition again, or pass --skip-checksums if you know why",
                    reason="CHECKSUM_MISMATCH",
                    metadata={"file": str(source), "expected": str(md5), "actual": actual.md5},
                )
    return []
