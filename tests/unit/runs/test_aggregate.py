"""Report numbers for a small two-group, three-seed example, computed by hand.

Seeds (see run_group_builder): alpha gold / bronze / invalid; beta above median /
no submission / below median; gamma silver / below median / (never graded: padded). Splits:
low = alpha, beta; medium = gamma; high = delta (no runs); all = alpha, beta, gamma, delta.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mleb.lab.aggregate import FailureCounts, build_report, pass_at_k
from mleb.lab.group_folder import load_run_group

from tests.unit.runs.run_group_builder import SPLITS, write_example

SPLITS_BY_NAME = {("all" if name == "split75" else name): ids for name, ids in SPLITS.items()}
THIRD = 100 / 3
# Per split: the per-seed percentages (MLE-bench's keys), seeds and padded results.
EXPECTED = {
    "low": {
        "seeds": 3,
        "padded": 0,
        "any_medal_percentage": [50, 50, 0],
        "gold_medal_percentage": [50, 0, 0],
        "silver_medal_percentage": [0, 0, 0],
        "bronze_medal_percentage": [0, 50, 0],
        "above_median_percentage": [100, 50, 0],
        "valid_submissions_percentage": [100, 50, 50],
        "submission_exists_percentage": [100, 50, 100],
        "pass_at_k": {1: THIRD, 2: 50, 3: 50},
    },
    "medium": {
        "seeds": 2,
        "padded": 0,
        "any_medal_percentage": [100, 0],
        "gold_medal_percentage": [0, 0],
        "silver_medal_percentage": [100, 0],
        "bronze_medal_percentage": [0, 0],
        "above_median_percentage": [100, 0],
        "valid_submissions_percentage": [100, 100],
        "submission_exists_percentage": [100, 100],
        "pass_at_k": {1: 50, 2: 100},
    },
    "all": {
        "seeds": 3,
        # delta in all three seeds, gamma in seed 3.
        "padded": 4,
        "any_medal_percentage": [50, 25, 0],
        "gold_medal_percentage": [25, 0, 0],
        "silver_medal_percentage": [25, 0, 0],
        "bronze_medal_percentage": [0, 25, 0],
        "above_median_percentage": [75, 25, 0],
        "valid_submissions_percentage": [75, 50, 25],
        "submission_exists_percentage": [75, 50, 50],
        # alpha medalled in 2 of 3 seeds, gamma in 1 of 3: pass@2 = (1 + 2/3) / 4.
        "pass_at_k": {1: 25, 2: 500 / 12, 3: 50},
    },
}
# Mean ± SEM (ddof=1) of the lists above, worked out by hand.
EXPECTED_STATS = {
    ("low", "any_medal_percentage"): (THIRD, 50 / 3),
    ("low", "submission_exists_percentage"): (250 / 3, 50 / 3),
    ("medium", "any_medal_percentage"): (50, 50),
    ("medium", "valid_submissions_percentage"): (100, 0),
    ("all", "any_medal_percentage"): (25, 25 / math.sqrt(3)),
    ("all", "above_median_percentage"): (THIRD, math.sqrt(4375 / 9)),
    ("all", "gold_medal_percentage"): (25 / 3, 25 / 3),
    ("all", "submission_exists_percentage"): (175 / 3, 25 / 3),
}


@pytest.fixture
def example(tmp_path: Path):
    groups, _ = write_example(tmp_path)
    return [load_run_group(g) for g in groups]


def report_of(groups):
    return build_report(groups, SPLITS_BY_NAME, mleb_version="9.9", generated_at="now")


def test_splits_without_runs_are_left_out(example) -> None:
    assert [s.split for s in report_of(example).splits] == ["low", "medium", "all"]


@pytest.mark.parametrize("split", EXPECTED)
def test_split_per_seed_percentages(example, split: str) -> None:
    summary = next(s for s in report_of(example).splits if s.split == split)
    expected = EXPECTED[split]
    assert summary.seeds == expected["seeds"]
    assert summary.padded_results == expected["padded"]
    assert summary.competitions == len(SPLITS_BY_NAME[split])
    assert len(summary.metrics) == 7
    for key in summary.metrics:
        assert [seed[key] for seed in summary.per_seed] == pytest.approx(expected[key]), key
    assert summary.pass_at_k == pytest.approx(expected["pass_at_k"])


@pytest.mark.parametrize(("split", "metric"), EXPECTED_STATS)
def test_split_mean_and_standard_error(example, split: str, metric: str) -> None:
    summary = next(s for s in report_of(example).splits if s.split == split)
    mean, sem = EXPECTED_STATS[split, metric]
    statistic = summary.metrics[metric]
    assert (statistic.mean, statistic.standard_error) == pytest.approx((mean, sem))
    assert statistic.ci_lower == pytest.approx(mean - 1.96 * sem)
    assert statistic.ci_upper == pytest.approx(mean + 1.96 * sem)


def test_group_order_does_not_matter(example) -> None:
    """Seeds follow the grading reports' paths (MLE-bench sorts them), not argument order."""
    assert report_of(list(reversed(example))).splits == report_of(example).splits


def test_one_seed_has_zero_standard_error(tmp_path: Path) -> None:
    groups, _ = write_example(tmp_path)
    report = report_of([load_run_group(groups[1])])
    low = next(s for s in report.splits if s.split == "low")
    assert low.seeds == 1 and low.pass_at_k == {1: 0.0}
    assert low.metrics["valid_submissions_percentage"].mean == 50
    assert all(m.standard_error == 0 for m in low.metrics.values())


def test_competitions_against_thresholds(example) -> None:
    competitions = {c.competition_id: c for c in report_of(example).competitions}
    assert list(competitions) == ["alpha", "beta", "gamma"]
    alpha = competitions["alpha"]
    thresholds = [getattr(alpha, f"{t}_threshold") for t in ("gold", "silver", "bronze", "median")]
    assert thresholds == [0.9, 0.8, 0.7, 0.5] and alpha.is_lower_better is False
    assert [(r.seed, r.score, r.outcome) for r in alpha.results] == [
        (0, 0.95, "gold"),
        (1, 0.72, "bronze"),
        (2, None, "invalid"),
    ]
    assert alpha.medals == 2 and alpha.grader_spec_versions == [2]
    assert all(r.run_id.startswith("alpha_") for r in alpha.results)
    beta = competitions["beta"]
    assert beta.is_lower_better is True
    assert [r.outcome for r in beta.results] == ["above median", "no submission", "below median"]
    assert [r.seed for r in competitions["gamma"].results] == [0, 1]


def test_failures_counted_apart(example) -> None:
    report = report_of(example)
    first, second = (g.failures for g in report.groups)
    assert first == FailureCounts(runs=6, succeeded=5, agent_failures=1, infrastructure_retries=1)
    assert second == FailureCounts(
        runs=3, succeeded=2, infrastructure_failures=1, infrastructure_retries=2
    )
    assert report.failures == FailureCounts(
        runs=9,
        succeeded=7,
        agent_failures=1,
        infrastructure_failures=1,
        infrastructure_retries=3,
    )


def test_provenance(example) -> None:
    report = report_of(example)
    assert report.mleb_version == "9.9"
    group = report.groups[0]
    assert group.mleb_version == "0.1.0" and group.agent_image == "lab/agent:1"
    assert group.image_digests == [f"sha256:{'ab' * 32}"]
    assert group.budget is not None and (group.budget.time_limit_s, group.budget.gpus) == (
        86400,
        1,
    )
    assert group.grading_report.endswith("_grading_report.json") and group.graded_runs == 6
    data = report.to_dict()
    assert data["splits"][0]["pass_at_k"].keys() == {"1", "2", "3"}
    assert data["competitions"][0]["grader_spec_versions"] == [2]


@pytest.mark.parametrize(
    ("medals", "seeds", "expected"),
    [
        ([0], 4, {1: 0, 2: 0, 3: 0, 4: 0}),
        ([4], 4, {1: 100, 2: 100, 3: 100, 4: 100}),
        # One medal in four seeds: k of them include it with probability k/4.
        ([1], 4, {1: 25, 2: 50, 3: 75, 4: 100}),
        # Two of four: 1 - C(2,k)/C(4,k) = 1/2, 5/6, 1, 1.
        ([2, 0], 4, {1: 25, 2: 500 / 12, 3: 50, 4: 50}),
    ],
)
def test_pass_at_k(medals: list[int], seeds: int, expected: dict[int, float]) -> None:
    assert pass_at_k(medals, seeds) == pytest.approx(expected)
