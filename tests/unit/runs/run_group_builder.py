"""Writes run-group folders the way `mleb run` does, through mleb.lab.records and
mleb.lab.group_folder, with grading reports made by the grader's own CompetitionReport /
aggregate_reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mleb.lab.group_folder import write_group_metadata
from mleb.lab.records import (
    Attempt,
    Budget,
    FailureType,
    GroupMetadata,
    RunRecord,
    RunState,
    create_run_dir,
    grading_report_name,
    group_dir_name,
    new_run_id,
    submission_path,
    write_run,
)
from mleb.lab.run_plan import AgentLaunch
from mleb.ranking import LeaderboardState, leaderboard_note
from mleb.reports import CompetitionReport, aggregate_reports

BUDGET = Budget(time_limit_s=86400, gpus=1, cpus=8, memory_bytes=64 * 2**30, network="none")
# Thresholds per competition: gold, silver, bronze, median, lower-is-better.
THRESHOLDS = {
    "alpha": (0.9, 0.8, 0.7, 0.5, False),
    "beta": (0.1, 0.2, 0.3, 0.5, True),
    "gamma": (0.99, 0.95, 0.9, 0.6, False),
}
# Competitions without a real leaderboard, and their lower-is-better: the grader's entries have
# null thresholds, no medal and not above median, and carry the state and its note.
NO_LEADERBOARD = {
    "epsilon": (LeaderboardState.LFS_POINTER, True),
    "zeta": (LeaderboardState.MISSING, False),
}
FLAGS = {
    "gold": {"gold_medal", "above_median", "valid_submission", "submission_exists"},
    "silver": {"silver_medal", "above_median", "valid_submission", "submission_exists"},
    "bronze": {"bronze_medal", "above_median", "valid_submission", "submission_exists"},
    "above median": {"above_median", "valid_submission", "submission_exists"},
    "below median": {"valid_submission", "submission_exists"},
    "invalid": {"submission_exists"},
    "no submission": set(),
}


@dataclass(frozen=True)
class Run:
    competition_id: str
    seed: int
    # An outcome in FLAGS, or None: the run has no grading-report entry.
    outcome: str | None
    score: float | None = None
    failure: FailureType = FailureType.NONE
    # Attempts lost to infrastructure failures before the final one.
    retries: int = 0


def entry(run: Run, run_id: str) -> CompetitionReport:
    assert run.outcome is not None
    state = LeaderboardState.PRESENT
    if run.competition_id in NO_LEADERBOARD:
        state, lower = NO_LEADERBOARD[run.competition_id]
        gold = silver = bronze = median = None
    else:
        gold, silver, bronze, median, lower = THRESHOLDS[run.competition_id]
    flags = FLAGS[run.outcome]
    assert state is LeaderboardState.PRESENT or not flags & {"above_median"}
    return CompetitionReport(
        competition_id=run.competition_id,
        score=run.score,
        gold_threshold=gold,
        silver_threshold=silver,
        bronze_threshold=bronze,
        median_threshold=median,
        any_medal=bool(flags & {"gold_medal", "silver_medal", "bronze_medal"}),
        gold_medal="gold_medal" in flags,
        silver_medal="silver_medal" in flags,
        bronze_medal="bronze_medal" in flags,
        above_median="above_median" in flags,
        submission_exists="submission_exists" in flags,
        valid_submission="valid_submission" in flags,
        is_lower_better=lower,
        submission_path=submission_path(run_id),
        grader_spec_version=2 if run.competition_id == "alpha" else 1,
        leaderboard_state=state.value,
        leaderboard_note=leaderboard_note(state),
    )


def run_record(run: Run, run_id: str, image: str) -> RunRecord:
    infra = Attempt(
        sandbox_id=f"sbx-{run_id}-infra",
        state=RunState.FAILED,
        failure_type=FailureType.INFRASTRUCTURE,
        failure_reason="engine_error",
        failure_message="engine went away",
    )
    final_state = RunState.SUCCEEDED if run.failure is FailureType.NONE else RunState.FAILED
    final = Attempt(f"sbx-{run_id}", final_state, run.failure)
    return RunRecord(
        run_id=run_id,
        competition_id=run.competition_id,
        seed=run.seed,
        image=image,
        image_digest=f"sha256:{'ab' * 32}",
        budget=BUDGET,
        state=final_state,
        failure_type=run.failure,
        attempts=(*[infra] * run.retries, final),
        created_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-02T00:00:00+00:00",
    )


def write_group(runs_dir: Path, runs: list[Run], *, started: datetime,
                image: str = "lab/agent:1") -> Path:  # fmt: skip
    """A graded run group; entries are written in (competition, seed) order, as `mleb run`
    writes them."""
    group = runs_dir / group_dir_name(image, started)
    reports, outcomes = [], {}
    for run in sorted(runs, key=lambda r: (r.competition_id, r.seed)):
        run_id = new_run_id(run.competition_id)
        run_dir = create_run_dir(group, run_id)
        write_run(run_dir, run_record(run, run_id, image))
        outcomes[run_id] = run.failure is FailureType.NONE
        if run.outcome is not None:
            reports.append(entry(run, run_id))
    write_group_metadata(
        group,
        GroupMetadata(
            run_group=group.name,
            created_at=started.isoformat(),
            runs=outcomes,
            mleb_version="0.1.0",
            agent_image=image,
            competition_set="lite",
            competition_ids=tuple(sorted({r.competition_id for r in runs})),
            seeds=len({r.seed for r in runs}),
            concurrency=2,
            budget=BUDGET,
            max_infrastructure_retries=2,
        ),
        AgentLaunch(image=image),
    )
    report = group / grading_report_name(started.replace(hour=23, tzinfo=UTC))
    report.write_text(json.dumps(aggregate_reports(reports), indent=2))
    return group


# Seeds 0 and 1 in one group, seed 2 in another; gamma's seed 2 never got graded (its runs
# failed on infrastructure), so seed 2 is padded for gamma.
GROUP_ONE = [
    Run("alpha", 0, "gold", 0.95),
    Run("beta", 0, "above median", 0.45),
    Run("gamma", 0, "silver", 0.96, retries=1),
    Run("alpha", 1, "bronze", 0.72),
    Run("beta", 1, "no submission", failure=FailureType.AGENT),
    Run("gamma", 1, "below median", 0.3),
]
GROUP_TWO = [
    Run("alpha", 2, "invalid"),
    Run("beta", 2, "below median", 0.9),
    Run("gamma", 2, None, failure=FailureType.INFRASTRUCTURE, retries=2),
]
# As MLE-bench's experiments/splits/*.txt; "high" has no run at all.
SPLITS = {"low": ["alpha", "beta"], "medium": ["gamma"], "high": ["delta"],
          "split75": ["alpha", "beta", "gamma", "delta"]}  # fmt: skip


def write_example(root: Path) -> tuple[list[Path], Path]:
    """The two run groups and a splits folder."""
    runs_dir = root / "runs"
    groups = [
        write_group(runs_dir, GROUP_ONE, started=datetime(2025, 1, 1, tzinfo=UTC)),
        write_group(runs_dir, GROUP_TWO, started=datetime(2025, 1, 5, tzinfo=UTC)),
    ]
    splits_dir = root / "splits"
    splits_dir.mkdir()
    for name, ids in SPLITS.items():
        (splits_dir / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return groups, splits_dir


# One group, two seeds, with competitions that have no real leaderboard: epsilon's (lower is
# better) was a Git LFS pointer at import, zeta's was never imported.
NO_LEADERBOARD_RUNS = [
    Run("alpha", 0, "gold", 0.95),
    Run("epsilon", 0, "below median", 0.31),
    Run("zeta", 0, "invalid"),
    Run("alpha", 1, "above median", 0.6),
    Run("epsilon", 1, "below median", 0.28),
    Run("zeta", 1, "below median", 0.5),
]
NO_LEADERBOARD_SPLITS = {"low": ["alpha", "epsilon"], "split75": ["alpha", "epsilon", "zeta"]}


def write_no_leaderboard_example(root: Path) -> tuple[Path, Path]:
    """The run group and a splits folder."""
    group = write_group(
        root / "runs", NO_LEADERBOARD_RUNS, started=datetime(2025, 2, 1, tzinfo=UTC)
    )
    splits_dir = root / "splits"
    splits_dir.mkdir()
    for name, ids in NO_LEADERBOARD_SPLITS.items():
        (splits_dir / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return group, splits_dir
