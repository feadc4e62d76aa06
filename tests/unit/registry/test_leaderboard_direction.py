"""The metric's direction comes from mleb's grading specs, never from whether a leaderboard
is present (issue 12, section 3). A plain clone of MLE-bench holds every leaderboard.csv as a
Git LFS pointer; before the specs declared their direction, such competitions were recorded
as higher-is-better."""

from __future__ import annotations

from pathlib import Path

from mleb.ranking import LeaderboardState

from services.registry.importers.install import ImportStatus
from services.registry.importers.mlebench import import_mlebench
from tests.fixtures.registry_trees import build_plain_clone_tree, leaderboard_csv

BWI = "billion-word-imputation"
TAXI = "new-york-city-taxi-fare-prediction"
PIZZA = "random-acts-of-pizza"


def test_direction_comes_from_the_spec_with_or_without_a_leaderboard(registry, tmp_path) -> None:
    tree = build_plain_clone_tree(tmp_path)
    report = import_mlebench(registry.installer, tree.repo, tree.data_dir)
    assert {r.competition_id: r.status for r in report.results} == {
        BWI: ImportStatus.PREPARED,
        TAXI: ImportStatus.METADATA_ONLY,
        PIZZA: ImportStatus.METADATA_ONLY,
    }
    bwi = registry.core.get_competition(BWI)
    assert bwi.lower_is_better is True
    assert bwi.leaderboard_size == 0
    assert bwi.leaderboard_status() is LeaderboardState.LFS_POINTER
    taxi = registry.core.get_competition(TAXI)
    assert taxi.lower_is_better is True and taxi.leaderboard_status() is LeaderboardState.PRESENT
    pizza = registry.core.get_competition(PIZZA)
    assert pizza.lower_is_better is False
    assert pizza.leaderboard_status() is LeaderboardState.MISSING
    notes = " ".join(next(r for r in report.results if r.competition_id == BWI).notes)
    assert "git lfs pull" in notes
    # Notes reach clients through the registry's API: no absolute server path in them.
    assert str(tmp_path) not in notes and "direction unknown" not in notes
    # The grading header carries both, so the grader can say why there are no thresholds.
    header, _ = registry.core.grading_bundle(BWI)
    assert header.lower_is_better is True
    assert header.leaderboard_state is LeaderboardState.LFS_POINTER


def test_a_leaderboard_contradicting_the_spec_fails_that_import(registry, tmp_path) -> None:
    tree = build_plain_clone_tree(tmp_path)
    # Best first, but ordered as if higher were better: RMSE cannot be.
    (tree.competition_dir(TAXI) / "leaderboard.csv").write_text(leaderboard_csv([4.0, 3.0, 2.0]))
    report = import_mlebench(registry.installer, tree.repo, tree.data_dir)
    taxi = next(r for r in report.results if r.competition_id == TAXI)
    assert taxi.status is ImportStatus.FAILED
    assert "higher is better" in taxi.error and "lower is better" in taxi.error
    # The others still import.
    assert {r.status for r in report.results if r.competition_id != TAXI} != {ImportStatus.FAILED}


def test_equal_end_scores_are_no_contradiction(registry, tmp_path: Path) -> None:
    tree = build_plain_clone_tree(tmp_path)
    (tree.competition_dir(TAXI) / "leaderboard.csv").write_text(leaderboard_csv([3.0, 3.0, 3.0]))
    report = import_mlebench(registry.installer, tree.repo, tree.data_dir, competitions=[TAXI])
    assert report.results[0].status is ImportStatus.METADATA_ONLY
    assert registry.core.get_competition(TAXI).lower_is_better is True
