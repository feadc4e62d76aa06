"""The numbers of a benchmark report, computed from loaded run groups (no I/O).

Per split this reproduces MLE-bench's experiments/aggregate_grading_reports.py with
--pad-missing: the k-th report of each competition belongs to seed k (reports taken from the
grading reports sorted by path, entries sorted by competition id, file order kept among
equals); a seed lacking a competition gets a failing placeholder; every percentage is averaged
across seeds with the standard error of the mean (ddof=1, 0 for one seed).

A competition graded without a real leaderboard (missing, or a Git LFS pointer in a plain
clone of MLE-bench) has null thresholds and entries with no medal and not above median; the
numbers take those flags as they are (MLE-bench's aggregation, unchanged), and the summaries
name such competitions and say why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any

import numpy as np
from scipy import stats

from mleb.lab.records import Budget, FailureType, RunGroup, RunRecord
from mleb.ranking import LeaderboardState, leaderboard_note

# Report key -> MLE-bench's name for the per-seed percentage, in MLE-bench's order.
PERCENTAGES = {
    "submission_exists": "submission_exists_percentage",
    "valid_submission": "valid_submissions_percentage",
    "above_median": "above_median_percentage",
    "gold_medal": "gold_medal_percentage",
    "silver_medal": "silver_medal_percentage",
    "bronze_medal": "bronze_medal_percentage",
    "any_medal": "any_medal_percentage",
}
_Z95 = 1.96
# A valid submission's outcome when its competition has no leaderboard to rank it against.
NO_LEADERBOARD = "no leaderboard"


@dataclass(frozen=True)
class GradedRun:
    """One grading-report entry, and the run it grades when that run has a run.json."""

    group: str
    entry: Mapping[str, Any]
    run: RunRecord | None = None

    @property
    def competition_id(self) -> str:
        return str(self.entry["competition_id"])

    def flag(self, name: str) -> bool:
        if name == "any_medal":
            return any(self.flag(m) for m in ("gold_medal", "silver_medal", "bronze_medal"))
        return bool(self.entry[name])

    @property
    def leaderboard(self) -> LeaderboardState:
        """Whether the entry was ranked against a real leaderboard. Thresholds decide: an entry
        without them (an LFS pointer or no leaderboard at import) could not earn a medal. An
        entry older than leaderboard_state, or MLE-bench's own, says nothing more: missing."""
        if self.entry.get("median_threshold") is not None:
            return LeaderboardState.PRESENT
        stored = self.entry.get("leaderboard_state")
        if stored in {s.value for s in LeaderboardState} - {LeaderboardState.PRESENT}:
            return LeaderboardState(stored)
        return LeaderboardState.MISSING

    @property
    def outcome(self) -> str:
        """The result in words: a medal, above/below median, no leaderboard (a valid
        submission that could not be ranked), invalid or no submission."""
        if not self.flag("submission_exists"):
            return "no submission"
        if not self.flag("valid_submission"):
            return "invalid"
        for medal in ("gold", "silver", "bronze"):
            if self.flag(f"{medal}_medal"):
                return medal
        if self.leaderboard is not LeaderboardState.PRESENT:
            return NO_LEADERBOARD
        return "above median" if self.flag("above_median") else "below median"


@dataclass(frozen=True)
class Statistic:
    """MLE-bench's AggregateMetric: mean, standard error and a 95% interval."""

    mean: float
    standard_error: float
    ci_lower: float
    ci_upper: float

    @classmethod
    def over(cls, values: Sequence[float]) -> Statistic:
        mean = float(np.mean(values))
        sem = float(stats.sem(values, ddof=1)) if len(values) > 1 else 0.0
        return cls(mean, sem, mean - _Z95 * sem, mean + _Z95 * sem)


@dataclass(frozen=True)
class SplitSummary:
    split: str
    competitions: int
    # Competitions of the split with at least one graded run; the rest are all padding.
    competitions_run: int
    seeds: int
    # Placeholder (failing) results added to complete the seeds.
    padded_results: int
    # Keyed by MLE-bench's names (PERCENTAGES' values).
    metrics: dict[str, Statistic]
    per_seed: list[dict[str, float]]
    # k -> percentage of the split's competitions medalled in at least one of k seeds.
    pass_at_k: dict[int, float]
    # Run competitions whose leaderboard is missing or a Git LFS pointer: no medal or median
    # could be computed, so they count as none in every percentage (as their entries say).
    without_leaderboard: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeedResult:
    group: str
    run_id: str
    # The seed `mleb run` gave the run (MLEB_SEED); None without a run.json.
    seed: int | None
    score: float | None
    outcome: str
    any_medal: bool
    grader_spec_version: int | None


@dataclass(frozen=True)
class CompetitionSummary:
    competition_id: str
    is_lower_better: bool | None
    gold_threshold: float | None
    silver_threshold: float | None
    bronze_threshold: float | None
    median_threshold: float | None
    grader_spec_versions: list[int]
    results: list[SeedResult]
    # "present", "missing" or "lfs_pointer" (mleb.ranking.LeaderboardState).
    leaderboard_state: str = LeaderboardState.PRESENT.value
    # Without a leaderboard: why medals could not be computed, and the fix.
    leaderboard_note: str = ""

    @property
    def medals(self) -> int:
        return sum(r.any_medal for r in self.results)

    @property
    def has_leaderboard(self) -> bool:
        return self.leaderboard_state == LeaderboardState.PRESENT


@dataclass(frozen=True)
class FailureCounts:
    """Outcomes from run.json: infrastructure and agent failures are counted apart."""

    runs: int = 0
    succeeded: int = 0
    agent_failures: int = 0
    infrastructure_failures: int = 0
    # Attempts lost to infrastructure failures and retried.
    infrastructure_retries: int = 0
    unfinished: int = 0

    @classmethod
    def of(cls, runs: Sequence[RunRecord]) -> FailureCounts:
        return cls(
            runs=len(runs),
            succeeded=sum(r.state.finished and r.failure_type is FailureType.NONE for r in runs),
            agent_failures=sum(r.failure_type is FailureType.AGENT for r in runs),
            infrastructure_failures=sum(r.failure_type is FailureType.INFRASTRUCTURE for r in runs),
            infrastructure_retries=sum(r.infrastructure_retries for r in runs),
            unfinished=sum(not r.state.finished for r in runs),
        )


@dataclass(frozen=True)
class GroupSummary:
    name: str
    path: str
    grading_report: str
    graded_runs: int
    mleb_version: str
    created_at: str
    agent_image: str
    image_digests: list[str]
    seeds: int | None
    budget: Budget | None
    failures: FailureCounts


@dataclass(frozen=True)
class Report:
    mleb_version: str
    generated_at: str
    groups: list[GroupSummary]
    splits: list[SplitSummary]
    competitions: list[CompetitionSummary]
    failures: FailureCounts = field(default_factory=FailureCounts)
    # Competitions with problems reported upstream (leakage, a wrong setup): id -> issue URLs.
    known_issues: dict[str, list[str]] = field(default_factory=dict)
    # The same splits with those competitions left out.
    splits_without_known_issues: list[SplitSummary] = field(default_factory=list)

    @property
    def known_issue_medals(self) -> list[str]:
        """ "<competition> seed <n>" for every medal earned on a competition with known issues."""
        return [
            f"{c.competition_id} seed {_seed(r.seed)}"
            for c in self.competitions
            if c.competition_id in self.known_issues
            for r in c.results
            if r.any_medal
        ]

    @property
    def without_leaderboard(self) -> list[CompetitionSummary]:
        return [c for c in self.competitions if not c.has_leaderboard]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["competitions_without_leaderboard"] = [
            c.competition_id for c in self.without_leaderboard
        ]
        data["known_issue_medals"] = self.known_issue_medals
        # JSON object keys are strings; keep pass@k readable as {"1": ..., "2": ...}.
        for split in [*data["splits"], *data["splits_without_known_issues"]]:
            split["pass_at_k"] = {str(k): v for k, v in split["pass_at_k"].items()}
        return data


def _seed(seed: int | None) -> str:
    return "?" if seed is None else str(seed)


def graded_runs(groups: Sequence[RunGroup]) -> list[GradedRun]:
    """Every entry in MLE-bench's reading order: by grading-report path, then competition id."""
    ordered = []
    for group in sorted(groups, key=lambda g: str(g.grading_report_path)):
        entries = sorted(group.entries, key=lambda e: str(e["competition_id"]))
        ordered += [GradedRun(group.name, e, group.run_for(e)) for e in entries]
    return ordered


def seeds_for(
    by_competition: Mapping[str, Sequence[GradedRun]], competition_ids: Sequence[str]
) -> list[list[GradedRun | None]]:
    """Seed k holds each competition's k-th result, None where that competition has fewer."""
    count = max((len(by_competition.get(c, ())) for c in competition_ids), default=0)
    return [
        [
            runs[k] if k < len(runs) else None
            for runs in (by_competition.get(c, ()) for c in competition_ids)
        ]
        for k in range(count)
    ]


def seed_percentages(seed: Sequence[GradedRun | None]) -> dict[str, float]:
    total = len(seed)
    return {
        key: sum(run is not None and run.flag(name) for run in seed) / total * 100
        for name, key in PERCENTAGES.items()
    }


def pass_at_k(medals_per_competition: Sequence[int], seeds: int) -> dict[int, float]:
    """The chance, averaged over competitions, that k of the seeds drawn without replacement
    include a medal: exactly "any of k seeds medalled", averaged over every choice of k."""
    return {
        k: float(np.mean([1 - comb(seeds - m, k) / comb(seeds, k) for m in medals_per_competition]))
        * 100
        for k in range(1, seeds + 1)
    }


def summarise_split(
    name: str, competition_ids: Sequence[str], by_competition: Mapping[str, Sequence[GradedRun]]
) -> SplitSummary | None:
    """None when no competition of the split was run (MLE-bench refuses that case)."""
    seeds = seeds_for(by_competition, competition_ids)
    if not competition_ids or not seeds:
        return None
    per_seed = [seed_percentages(seed) for seed in seeds]
    medals = [
        sum(run is not None and run.flag("any_medal") for run in column)
        for column in zip(*seeds, strict=True)
    ]
    return SplitSummary(
        split=name,
        competitions=len(competition_ids),
        competitions_run=sum(bool(by_competition.get(c)) for c in competition_ids),
        seeds=len(seeds),
        padded_results=sum(run is None for seed in seeds for run in seed),
        metrics={key: Statistic.over([s[key] for s in per_seed]) for key in PERCENTAGES.values()},
        per_seed=per_seed,
        pass_at_k=pass_at_k(medals, len(seeds)),
        without_leaderboard=[
            c
            for c in competition_ids
            if by_competition.get(c) and leaderboard_of(by_competition[c]) is not PRESENT
        ],
    )


PRESENT = LeaderboardState.PRESENT


def leaderboard_of(runs: Sequence[GradedRun]) -> LeaderboardState:
    """Present when any entry was ranked (thresholds do not change between seeds); else the
    first entry's reason."""
    states = [r.leaderboard for r in runs]
    return PRESENT if PRESENT in states else states[0]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def summarise_competition(competition_id: str, runs: Sequence[GradedRun]) -> CompetitionSummary:
    """Thresholds come from the first entry that has them: they are the leaderboard's and do
    not change between seeds."""
    with_thresholds = next((r.entry for r in runs if r.entry.get("median_threshold") is not None),
                           runs[0].entry)  # fmt: skip
    lower = with_thresholds.get("is_lower_better")
    state = leaderboard_of(runs)
    # The grader's own note when an entry has one; else ours (an entry older than the field).
    notes = [r.entry.get("leaderboard_note") for r in runs if r.leaderboard is state]
    note = next((str(n) for n in notes if n), leaderboard_note(state))
    return CompetitionSummary(
        competition_id=competition_id,
        is_lower_better=None if lower is None else bool(lower),
        gold_threshold=_optional_float(with_thresholds.get("gold_threshold")),
        silver_threshold=_optional_float(with_thresholds.get("silver_threshold")),
        bronze_threshold=_optional_float(with_thresholds.get("bronze_threshold")),
        median_threshold=_optional_float(with_thresholds.get("median_threshold")),
        grader_spec_versions=sorted(
            {r.entry["grader_spec_version"] for r in runs if r.entry.get("grader_spec_version")}
        ),
        results=[
            SeedResult(
                group=r.group,
                run_id=r.run.run_id if r.run else "",
                seed=r.run.seed if r.run else None,
                score=_optional_float(r.entry.get("score")),
                outcome=r.outcome,
                any_medal=r.flag("any_medal"),
                grader_spec_version=r.entry.get("grader_spec_version"),
            )
            for r in runs
        ],
        leaderboard_state=state.value,
        leaderboard_note=note,
    )


def summarise_group(group: RunGroup) -> GroupSummary:
    metadata = group.metadata
    runs = list(group.runs.values())
    return GroupSummary(
        name=group.name,
        path=str(group.path),
        grading_report=group.grading_report_path.name,
        graded_runs=len(group.entries),
        mleb_version=metadata.mleb_version if metadata else "",
        created_at=metadata.created_at if metadata else "",
        agent_image=metadata.agent_image if metadata else "",
        image_digests=sorted({r.image_digest for r in runs if r.image_digest}),
        seeds=metadata.seeds if metadata and metadata.seeds else None,
        budget=metadata.budget if metadata else None,
        failures=FailureCounts.of(runs),
    )


def build_report(
    groups: Sequence[RunGroup],
    splits: Mapping[str, Sequence[str]],
    *,
    mleb_version: str,
    generated_at: str,
    known_issues: Mapping[str, Sequence[str]] | None = None,
) -> Report:
    """Merges the groups (seeds may come from several) and summarises each given split, in the
    given order, that has at least one graded run."""
    by_competition: dict[str, list[GradedRun]] = defaultdict(list)
    for run in graded_runs(groups):
        by_competition[run.competition_id].append(run)
    summaries = (summarise_split(name, ids, by_competition) for name, ids in splits.items())
    flagged = dict(known_issues or {})
    without = (
        summarise_split(name, [c for c in ids if c not in flagged], by_competition)
        for name, ids in splits.items()
    )
    return Report(
        mleb_version=mleb_version,
        generated_at=generated_at,
        groups=[summarise_group(g) for g in groups],
        splits=[s for s in summaries if s is not None],
        competitions=[summarise_competition(c, by_competition[c]) for c in sorted(by_competition)],
        failures=FailureCounts.of([r for g in groups for r in g.runs.values()]),
        known_issues={c: list(urls) for c, urls in sorted(flagged.items())},
        splits_without_known_issues=[s for s in without if s is not None] if flagged else [],
    )
