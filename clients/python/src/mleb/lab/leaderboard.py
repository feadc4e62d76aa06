"""`mleb report GROUP --leaderboard OUT`: everything MLE-bench's leaderboard asks for, with the
evidence that backs it, in one folder that `mleb verify OUT` accepts as it is."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mleb.evidence.keys import format_keys
from mleb.lab.bundle_figures import (
    EXPERIMENTS_FILE,
    README_FILE,
    SUMMARY_FILE,
    bundle_readme,
    bundle_summary,
    experiments_csv,
)
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import METADATA_FILE, RUN_FILE, RunGroup

KEYS_FILE = "keys.pem"
_RUN_FILES = (RUN_FILE, ATTESTATION_FILE, GRADING_STATEMENT_FILE, "submission/submission.csv")


def _copy(source: Path, target: Path) -> None:
    """Regular files only: a link in a run folder is never followed into the bundle."""
    if source.is_symlink() or not source.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def _copy_group(group: RunGroup, target: Path) -> None:
    _copy(group.grading_report_path, target / group.grading_report_path.name)
    for name in (METADATA_FILE, AUDIT_CHAIN_FILE):
        _copy(group.path / name, target / name)
    for run_id in group.runs:
        for name in _RUN_FILES:
            _copy(group.path / run_id / name, target / run_id / name)


def write_bundle(
    group_dir: Path,
    out: Path,
    *,
    splits: Mapping[str, Sequence[str]],
    known_issues: Mapping[str, Sequence[Mapping[str, Any]]],
    public_keys: Sequence[tuple[str, str]],
    experiment_id: str,
    mleb_version: str,
) -> dict[str, Any]:
    """Writes the bundle into `out`, which must not exist; returns its summary."""
    group = load_run_group(group_dir)
    out.mkdir(parents=True)
    runs = out / "runs"
    _copy_group(group, runs / group_dir.name)
    (runs / EXPERIMENTS_FILE).write_text(
        experiments_csv(experiment_id, [group_dir.name]), encoding="utf-8"
    )
    copied = load_run_group(runs / group_dir.name)
    summary = {
        **bundle_summary([copied], splits, known_issues, experiment_id),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mleb_version": mleb_version,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / KEYS_FILE).write_text(format_keys(public_keys), encoding="utf-8")
    (out / README_FILE).write_text(bundle_readme(summary), encoding="utf-8")
    return summary
