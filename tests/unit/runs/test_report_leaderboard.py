"""Issue 12, section 3: a competition without a real leaderboard (missing, or a Git LFS
pointer as in a plain clone of MLE-bench) is named in every report format, with the reason and
the `git lfs pull` fix, and counted per split; MLE-bench's numbers stay as they were (such
results count as no medal and not above median, as their entries say)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mleb.lab.aggregate import build_report
from mleb.lab.group_folder import load_run_group
from mleb.lab.report_render import render_html, render_json, render_markdown
from mleb.ranking import LeaderboardState, leaderboard_note

from tests.unit.runs.run_group_builder import (
    NO_LEADERBOARD_SPLITS,
    write_example,
    write_no_leaderboard_example,
)

SPLITS = {("all" if k == "split75" else k): v for k, v in NO_LEADERBOARD_SPLITS.items()}
THIRD = 100 / 3
LFS_NOTE = leaderboard_note(LeaderboardState.LFS_POINTER)
MISSING_NOTE = leaderboard_note(LeaderboardState.MISSING)


def report_of(groups, splits=SPLITS):
    return build_report(groups, splits, mleb_version="9.9", generated_at="now")


@pytest.fixture
def group_path(tmp_path: Path) -> Path:
    return write_no_leaderboard_example(tmp_path)[0]


@pytest.fixture
def report(group_path: Path):
    return report_of([load_run_group(group_path)])


def test_numbers_stay_mle_bench(report) -> None:
    """Worked out by hand from the entries' flags, as MLE-bench's aggregation reads them."""
    splits = {s.split: s for s in report.splits}
    per_seed = {name: {k: [s[k] for s in split.per_seed] for k in split.metrics}
                for name, split in splits.items()}  # fmt: skip
    assert per_seed["low"]["any_medal_percentage"] == pytest.approx([50, 0])
    assert per_seed["low"]["above_median_percentage"] == pytest.approx([50, 50])
    assert per_seed["low"]["valid_submissions_percentage"] == pytest.approx([100, 100])
    assert per_seed["all"]["any_medal_percentage"] == pytest.approx([THIRD, 0])
    assert per_seed["all"]["gold_medal_percentage"] == pytest.approx([THIRD, 0])
    assert per_seed["all"]["above_median_percentage"] == pytest.approx([THIRD, THIRD])
    assert per_seed["all"]["valid_submissions_percentage"] == pytest.approx([2 * THIRD, 100])
    assert per_seed["all"]["submission_exists_percentage"] == pytest.approx([100, 100])
    assert splits["low"].pass_at_k == pytest.approx({1: 25, 2: 50})


def test_split_counts_competitions_without_a_leaderboard(report) -> None:
    splits = {s.split: s for s in report.splits}
    assert splits["low"].without_leaderboard == ["epsilon"]
    assert splits["all"].without_leaderboard == ["epsilon", "zeta"]
    assert [c.competition_id for c in report.without_leaderboard] == ["epsilon", "zeta"]


def test_competitions_say_why_and_how_to_fix(report) -> None:
    competitions = {c.competition_id: c for c in report.competitions}
    alpha, epsilon, zeta = competitions["alpha"], competitions["epsilon"], competitions["zeta"]
    assert alpha.has_leaderboard and alpha.leaderboard_state == "present"
    assert alpha.leaderboard_note == ""
    assert (epsilon.leaderboard_state, epsilon.leaderboard_note) == ("lfs_pointer", LFS_NOTE)
    assert (zeta.leaderboard_state, zeta.leaderboard_note) == ("missing", MISSING_NOTE)
    # The direction is the spec's, not lost with the leaderboard.
    assert epsilon.is_lower_better is True
    # A valid submission is not "below median": it could not be ranked.
    assert [r.outcome for r in epsilon.results] == ["no leaderboard", "no leaderboard"]
    assert [r.outcome for r in zeta.results] == ["invalid", "no leaderboard"]
    assert [r.outcome for r in alpha.results] == ["gold", "above median"]


def test_entries_older_than_leaderboard_state(group_path: Path) -> None:
    """MLE-bench's own entries and older mleb ones have no leaderboard_state: null thresholds
    still mean no leaderboard, reported as missing with the fix."""
    path = next(group_path.glob("*_grading_report.json"))
    data = json.loads(path.read_text())
    for entry in data["competition_reports"]:
        entry.pop("leaderboard_state")
        entry.pop("leaderboard_note")
    path.write_text(json.dumps(data))
    report = report_of([load_run_group(group_path)])
    states = {c.competition_id: (c.leaderboard_state, c.leaderboard_note)
              for c in report.competitions}  # fmt: skip
    assert states == {
        "alpha": ("present", ""),
        "epsilon": ("missing", MISSING_NOTE),
        "zeta": ("missing", MISSING_NOTE),
    }


def test_json_carries_states_and_counts(report) -> None:
    data = json.loads(render_json(report))
    assert data["competitions_without_leaderboard"] == ["epsilon", "zeta"]
    assert {s["split"]: s["without_leaderboard"] for s in data["splits"]} == {
        "low": ["epsilon"],
        "all": ["epsilon", "zeta"],
    }
    competitions = {c["competition_id"]: c for c in data["competitions"]}
    assert competitions["epsilon"]["leaderboard_state"] == "lfs_pointer"
    assert "git lfs pull" in competitions["epsilon"]["leaderboard_note"]
    assert competitions["alpha"]["leaderboard_state"] == "present"


def test_markdown_names_each_competition_with_the_fix(report) -> None:
    markdown = render_markdown(report)
    assert "**Warning:** Medals could not be computed for 2 of the 3 competitions run" in markdown
    assert "1 because its leaderboard is a Git LFS pointer" in markdown
    assert "1 because its leaderboard is missing" in markdown
    assert "run `git lfs pull` in the MLE-bench checkout" in markdown
    assert "`mleb run --resume RUN_GROUP_DIR` regrades the whole group" in markdown
    # The split table counts them in its last column.
    assert "| low (lite) | 2 (2) | 2 | 25.00 ± 25.00 |" in markdown
    low = next(line for line in markdown.splitlines() if line.startswith("| low (lite) |"))
    assert low.endswith("| 1 |")
    all_row = next(line for line in markdown.splitlines() if line.startswith("| all (split75)"))
    assert all_row.endswith("| 2 |")
    # No thresholds are shown as if they were merely not recorded.
    assert "| epsilon | lower | n/a | n/a | n/a | n/a |" in markdown
    assert "seed 0: 0.31 no leaderboard; seed 1: 0.28 no leaderboard | 0/2 (no leaderboard) |" in (
        markdown
    )
    section = markdown.split("## Competitions without a leaderboard\n\n")[1].split("\n\n")[0]
    assert section.splitlines() == [
        "- epsilon: medals could not be computed because its leaderboard is a Git LFS pointer, "
        f"so its 2 results count as no medal and not above median ({LFS_NOTE}).",
        "- zeta: medals could not be computed because its leaderboard is missing, so its 2 "
        f"results count as no medal and not above median ({MISSING_NOTE}).",
    ]


def test_html_names_each_competition_with_the_fix(report) -> None:
    page = render_html(report)
    assert 'id="no-leaderboard-warning"' in page
    assert "Medals could not be computed for 2 of the 3 competitions run" in page
    assert page.count("<li data-competition=") == 2
    assert "run `git lfs pull` in the MLE-bench checkout" in page
    # The chart draws no medal zones for them, only a neutral band and the reason.
    assert page.count('class="zone zone-no-leaderboard"') == 2
    assert page.count("no leaderboard: medals not computed") == 2
    assert page.count('class="zone zone-below-median"') == 1  # alpha's only


def test_reports_with_every_leaderboard_say_nothing_more(tmp_path: Path) -> None:
    groups, _ = write_example(tmp_path)
    report = report_of(
        [load_run_group(g) for g in groups], {"low": ["alpha", "beta"], "all": ["alpha", "beta"]}
    )
    assert report.without_leaderboard == []
    assert all(s.without_leaderboard == [] for s in report.splits)
    markdown, page = render_markdown(report), render_html(report)
    assert "Warning" not in markdown and "without a leaderboard" not in markdown.lower()
    assert "no-leaderboard" not in page
    assert json.loads(render_json(report))["competitions_without_leaderboard"] == []


def test_medals_on_competitions_with_known_issues_are_flagged(group_path: Path) -> None:
    """Issue 11, item 5: every such medal is named, and each split is also given without them."""
    url = "https://github.com/openai/mle-bench/issues/108"
    report = build_report(
        [load_run_group(group_path)], SPLITS, mleb_version="9.9", generated_at="now",
        known_issues={"alpha": [url]},
    )  # fmt: skip
    assert report.known_issue_medals == ["alpha seed 0"]
    with_alpha = {s.split: s for s in report.splits}["low"]
    without = {s.split: s for s in report.splits_without_known_issues}["low"]
    assert with_alpha.metrics["any_medal_percentage"].mean == pytest.approx(25)
    assert without.metrics["any_medal_percentage"].mean == pytest.approx(0)
    assert without.competitions == with_alpha.competitions - 1
    markdown = render_markdown(report)
    assert "## Competitions with known issues" in markdown and url in markdown
    assert "Medals earned on them: alpha seed 0." in markdown
    assert 'id="known-issues"' in render_html(report) and url in render_html(report)
    data = json.loads(render_json(report))
    assert data["known_issue_medals"] == ["alpha seed 0"] and data["known_issues"] == {
        "alpha": [url]
    }
    # Without known issues, no section appears.
    assert "known issues" not in render_markdown(report_of([load_run_group(group_path)]))
