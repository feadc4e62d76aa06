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
    SUMMARY_FILE,
    bundle_figures,
    experiments_csv,
)
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.records import (
    METADATA_FILE,
    RUN_FILE,
    RunGroup,
    load_run_group,
)

KEYS_FILE = "keys.pem"
_RUN_FILES = (RUN_FILE, ATTESTATION_FILE, GRADING_STATEMENT_FILE, "submission/submission.csv")
_COLUMNS = (("low", "Low == Lite (%)"), ("medium", "Medium (%)"), ("high", "High (%)"),
            ("all", "All (%)"))  # fmt: skip


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


def _cell(figure: Mapping[str, Any] | None) -> str:
    if figure is None:
        return "-"
    padded = "[^padded]" if figure["padded_results"] else ""
    return f"{figure['mean']:.2f} ± {figure['sem']:.2f}{padded}"


def _table(figures: Mapping[str, Any]) -> list[str]:
    return [
        "| " + " | ".join(title for _k, title in _COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
        "| " + " | ".join(_cell(figures.get(k)) for k, _t in _COLUMNS) + " |",
    ]


def _readme(name: str, summary: Mapping[str, Any]) -> str:
    figures = summary["any_medal_percentage"]
    without = summary["any_medal_percentage_without_known_issues"]
    profile = summary["resource_profile"]
    lines = [
        f"# Leaderboard bundle: {name}",
        "",
        "Any-medal percentage, mean ± SEM over seeds (MLE-bench's leaderboard columns):",
        "",
        *_table(figures),
        "",
        "Without competitions that have known issues upstream:",
        "",
        *_table(without),
        "",
        f"Medals on competitions with known issues: "
        f"{', '.join(summary['medals_on_known_issue_competitions']) or 'none'}.",
        "",
        f"Resources (attested): GPU {', '.join(profile['gpu_models']) or 'none'} "
        f"x{profile['gpus_per_run']}, {profile['vcpus_per_run'] or 'default'} vCPUs, "
        f"{profile['memory_bytes_per_run'] or 'default'} bytes RAM, "
        f"{profile['hours_per_run_mean']:.3f} hours per run.",
        "",
        "Test-set feedback: none. Every run carries a signed attestation, and every grader "
        "call is in the audit chain; check with `mleb verify <this folder> --keys KEYS`.",
    ]
    if any(f["padded_results"] for f in figures.values()):
        lines += ["", "[^padded]: Seeds were missing for some competitions; they were padded "
                  "with failing results, as MLE-bench's aggregation does."]  # fmt: skip
    return "\n".join(lines) + "\n"


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
        "schema_version": 1,
        "run_group": group.name,
        "experiment_id": experiment_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mleb_version": mleb_version,
        "splits_membership": {name: list(ids) for name, ids in splits.items()},
        "known_issue_competitions": sorted(known_issues),
        "known_issues": {c: list(issues) for c, issues in sorted(known_issues.items())},
        **bundle_figures([copied], splits, sorted(known_issues)),
        "disclosure": {
            "test_set_feedback": "none",
            "backed_by": "signed sandbox attestations and the audit chain of grader calls",
            "grading_reports_available": True,
        },
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / KEYS_FILE).write_text(format_keys(public_keys), encoding="utf-8")
    (out / "README.md").write_text(_readme(group.name, summary), encoding="utf-8")
    return summary
