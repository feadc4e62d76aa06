"""The figures a leaderboard bundle states, computed from its run groups alone, so that
`mleb verify` can recompute every one of them (docs/verifiable-runs.md#leaderboard-bundles)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mleb.evidence.dsse import Envelope, EvidenceError
from mleb.lab.aggregate import GradedRun, graded_runs, summarise_split
from mleb.lab.evidence_files import ATTESTATION_FILE
from mleb.lab.records import RunGroup

EXPERIMENTS_FILE = "run_group_experiments.csv"
SUMMARY_FILE = "summary.json"


def read_experiments(path: Path) -> list[str]:
    """The run groups MLE-bench's run_group_experiments.csv lists, in order."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or "run_group" not in rows[0]:
        raise ValueError(f"{path.name} has no run_group column")
    names = [row["run_group"] for row in rows]
    if any(not n or "/" in n or n.startswith(".") for n in names):
        raise ValueError(f"{path.name} names a run group that is not a plain folder name")
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
