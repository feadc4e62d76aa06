"""The figures a leaderboard bundle states, computed from its run groups alone, so that
`mleb verify` can recompute every one of them (docs/verifiable-runs.md#leaderboard-bundles)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from mleb.evidence.dsse import Envelope, EvidenceError
from mleb.lab.aggregate import GradedRun, graded_runs, summarise_split
from mleb.lab.evidence_files import ATTESTATION_FILE
from mleb.lab.records import RunGroup

EXPERIMENTS_FILE = "run_group_experiments.csv"
SUMMARY_FILE = "summary.json"
README_FILE = "README.md"
_COLUMNS = (("low", "Low == Lite (%)"), ("medium", "Medium (%)"), ("high", "High (%)"),
            ("all", "All (%)"))  # fmt: skip


def read_experiments(text: str, where: str = EXPERIMENTS_FILE) -> list[str]:
    """The run groups MLE-bench's run_group_experiments.csv lists, in order."""
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if not rows or "run_group" not in rows[0]:
        raise ValueError(f"{where} has no run_group column")
    names = [row["run_group"] for row in rows]
    if any(not n or "/" in n or n.startswith(".") for n in names):
        raise ValueError(f"{where} names a run group that is not a plain folder name")
    return names


def experiments_csv(experiment_id: str, groups: Sequence[str]) -> str:
    lines = ["experiment_id,run_group"] + [f"{experiment_id},{g}" for g in groups]
    return "\n".join(lines) + "\n"


def _any_medal(
    splits: Mapping[str, Sequence[str]], by_competition: Mapping[str, Sequence[GradedRun]]
) -> dict[str, Any]:
    figures = {}
    for name, ids in splits.items():
        summary = summarise_split(name, ids, by_competition)
        if summary is None:
            continue
        metric = summary.metrics["any_medal_percentage"]
        figures[name] = {
            "mean": metric.mean,
            "sem": metric.standard_error,
            "seeds": summary.seeds,
            "competitions": summary.competitions,
            "competitions_run": summary.competitions_run,
            "padded_results": summary.padded_results,
        }
    return figures


def _attested(group: RunGroup) -> list[dict[str, Any]]:
    predicates = []
    for run_id in group.runs:
        try:
            envelope = Envelope.from_json((group.path / run_id / ATTESTATION_FILE).read_bytes())
            predicates.append(envelope.statement().get("predicate", {}))
        except (OSError, EvidenceError):
            continue
    return predicates


def resource_profile(groups: Sequence[RunGroup]) -> dict[str, Any]:
    """What the attestations say the runs had and used."""
    predicates = [p for g in groups for p in _attested(g)]
    granted = [p.get("resources", {}).get("granted", {}) for p in predicates]
    models = sorted({gpu.get("model") or "unknown" for g in granted for gpu in g.get("gpus", [])})
    hours = [p.get("time", {}).get("wall_s", 0.0) / 3600 for p in predicates]
    return {
        "attested_runs": len(predicates),
        "gpu_models": models,
        "simulated_gpus": any(gpu.get("simulated") for g in granted for gpu in g.get("gpus", [])),
        "gpus_per_run": max((len(g.get("gpus", [])) for g in granted), default=0),
        "vcpus_per_run": max((g.get("cpus", 0) for g in granted), default=0),
        "memory_bytes_per_run": max((g.get("memory_bytes", 0) for g in granted), default=0),
        "hours_per_run_mean": statistics.fmean(hours) if hours else 0.0,
        "validation_calls": sum(p.get("validation_calls", 0) for p in predicates),
    }


def bundle_figures(
    groups: Sequence[RunGroup],
    splits: Mapping[str, Sequence[str]],
    known_issue_competitions: Sequence[str],
) -> dict[str, Any]:
    by_competition: dict[str, list[GradedRun]] = defaultdict(list)
    for run in graded_runs(groups):
        by_competition[run.competition_id].append(run)
    flagged = set(known_issue_competitions)
    without = {name: [c for c in ids if c not in flagged] for name, ids in splits.items()}
    return {
        "any_medal_percentage": _any_medal(splits, by_competition),
        "any_medal_percentage_without_known_issues": _any_medal(without, by_competition),
        "medals_on_known_issue_competitions": sorted(
            f"{run.group}/{run.run.run_id if run.run else run.entry.get('submission_path')}"
            for competition in flagged
            for run in by_competition.get(competition, [])
            if run.flag("any_medal")
        ),
        "resource_profile": resource_profile(groups),
    }


def _disclosure(groups: Sequence[RunGroup]) -> dict[str, Any]:
    declared = sorted(s for g in groups if g.metadata for s in g.metadata.declared_grader_calls)
    return {
        "test_set_feedback": f"declared scoring calls: {declared}" if declared else "none",
        "backed_by": "signed sandbox attestations and the audit chain of grader calls",
        "grading_reports_available": True,
    }


def bundle_summary(
    groups: Sequence[RunGroup],
    splits: Mapping[str, Sequence[str]],
    known_issues: Mapping[str, Sequence[Mapping[str, Any]]],
    experiment_id: str,
) -> dict[str, Any]:
    """Everything summary.json states, from the groups and trusted split and issue lists:
    `mleb verify` rebuilds it the same way and compares."""
    return {
        "schema_version": 1,
        "run_group": groups[0].name if len(groups) == 1 else [g.name for g in groups],
        "experiment_id": experiment_id,
        "splits_membership": {name: list(ids) for name, ids in splits.items()},
        "known_issue_competitions": sorted(known_issues),
        "known_issues": {c: list(issues) for c, issues in sorted(known_issues.items())},
        **bundle_figures(groups, splits, sorted(known_issues)),
        "disclosure": _disclosure(groups),
    }


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


def bundle_readme(summary: Mapping[str, Any]) -> str:
    """The leaderboard row and its notes, written from the summary alone."""
    name = summary["run_group"]
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
        f"Test-set feedback: {summary['disclosure']['test_set_feedback']}. Every run carries "
        "a signed attestation, and every grader call is in the audit chain; check with "
        "`mleb verify <this folder> --keys KEYS`.",
    ]
    if any(f["padded_results"] for f in figures.values()):
        lines += ["", "[^padded]: Seeds were missing for some competitions; they were padded "
                  "with failing results, as MLE-bench's aggregation does."]  # fmt: skip
    return "\n".join(lines) + "\n"
