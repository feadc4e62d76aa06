"""Importing MLE-bench trees and mleb's own format, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from services.common.errors import InvalidArgumentError, NotFoundError
from services.registry.importers.install import ImportStatus
from services.registry.importers.mlebench import import_mlebench
from services.registry.importers.own_format import import_competition, validate_competition
from services.registry.records import DataStatus, Source
from tests.fixtures.registry_trees import (
    ALPHA_SCORES,
    LFS_POINTER,
    build_mlebench_tree,
    build_own_competition,
)


def statuses(report) -> dict[str, ImportStatus]:
    return {r.competition_id: r.status for r in report.results}


def test_mlebench_import(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    report = import_mlebench(registry.installer, tree.repo, tree.data_dir)
    assert statuses(report) == {
        "alpha-cls": ImportStatus.PREPARED,
        "beta-reg": ImportStatus.PREPARED,
        "delta-bad": ImportStatus.FAILED,
        "epsilon-nodata": ImportStatus.METADATA_ONLY,
        "gamma-lfs": ImportStatus.PREPARED,
    }
    by_id = {r.competition_id: r for r in report.results}
    # The mismatch names the file and the way out.
    bad_file = tree.prepared("delta-bad") / "public" / "train.csv"
    assert f"checksum mismatch for {bad_file}" in by_id["delta-bad"].error
    assert "--skip-checksums" in by_id["delta-bad"].error
    # The LFS pointer names the file and the fix, and is not imported as data.
    lfs_note = " ".join(by_id["gamma-lfs"].notes)
    # Relative to the checkout: notes reach clients, server paths never do.
    assert "mlebench/competitions/gamma-lfs/leaderboard.csv" in lfs_note
    assert str(tree.repo) not in lfs_note
    assert "git lfs pull" in lfs_note
    assert "mlebench prepare -c epsilon-nodata" in " ".join(by_id["epsilon-nodata"].notes)

    alpha = registry.core.get_competition("alpha-cls")
    assert alpha.source is Source.MLEBENCH
    assert alpha.metric.name == "accuracy"
    assert alpha.category == "Image Classification"
    assert alpha.complexity == "low"
    assert alpha.splits == ["all", "dev", "low"]
    assert not alpha.awards_medals and not alpha.lower_is_better
    assert alpha.leaderboard_size == len(ALPHA_SCORES)
    assert [f.path for f in alpha.public_files] == [
        "sample_submission.csv",
        "test.csv",
        "train.csv",
    ]
    assert alpha.description_obfuscated and alpha.description.startswith("# alpha-cls")

    beta = registry.core.get_competition("beta-reg")
    assert beta.lower_is_better and beta.answers.format == "jsonl"
    assert "images/nested/b.png" in [f.path for f in beta.public_files]

    gamma = registry.core.get_competition("gamma-lfs")
    assert gamma.leaderboard_size == 0 and gamma.data_status is DataStatus.PREPARED

    epsilon = registry.core.get_competition("epsilon-nodata")
    assert epsilon.data_status is DataStatus.METADATA_ONLY
    assert "epsilon-nodata/prepared/public is missing" in epsilon.data_status_reason
    assert epsilon.leaderboard_size == 4 and epsilon.complexity == "high"

    with pytest.raises(NotFoundError):
        registry.core.get_competition("delta-bad")
    # Private answers live only under the registry's data dir, readable by its user alone.
    private = registry.core.storage.private_dir("alpha-cls")
    assert (private / "test.csv").read_text() == "id,label\n3,a\n4,b\n"
    assert (private.stat().st_mode & 0o077) == 0


def test_skip_checksums_is_recorded(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    report = import_mlebench(
        registry.installer,
        tree.repo,
        tree.data_dir,
        competitions=["delta-bad"],
        skip_checksums=True,
    )
    assert statuses(report) == {"delta-bad": ImportStatus.PREPARED}
    assert any("--skip-checksums" in note for note in report.results[0].notes)
    assert registry.core.get_competition("delta-bad").checksums_skipped


def test_missing_checksummed_file_is_refused(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    (tree.prepared("alpha-cls") / "public" / "test.csv").unlink()
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    assert report.results[0].status is ImportStatus.FAILED
    assert "public/test.csv is listed in" in report.results[0].error


def test_without_data_dir_everything_is_metadata_only(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    report = import_mlebench(registry.installer, tree.repo)
    assert set(statuses(report).values()) == {ImportStatus.METADATA_ONLY}
    assert "no --data-dir given" in report.results[0].notes[-1]


def test_reimport_replaces_and_metadata_only_removes_files(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    import_mlebench(registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"])
    first = registry.core.get_competition("alpha-cls").bundle_digest
    (tree.competition_dir("alpha-cls") / "leaderboard.csv").write_text("score\n1\n0.5\n")
    import_mlebench(registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"])
    again = registry.core.get_competition("alpha-cls")
    assert again.leaderboard_size == 2 and again.bundle_digest != first
    import_mlebench(registry.installer, tree.repo, None, competitions=["alpha-cls"])
    assert not registry.core.storage.competition_dir("alpha-cls").exists()


def test_repo_level_problems(registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not an MLE-bench checkout"):
        import_mlebench(registry.installer, tmp_path)
    tree = build_mlebench_tree(tmp_path)
    with pytest.raises(NotFoundError, match="nope"):
        import_mlebench(registry.installer, tree.repo, competitions=["nope"])
    (tree.repo / "experiments" / "competition_categories.csv").write_text(LFS_POINTER)
    (tree.repo / "experiments" / "splits" / "dev.txt").write_text(LFS_POINTER)
    report = import_mlebench(registry.installer, tree.repo, competitions=["alpha-cls"])
    assert any("competition_categories.csv is a Git LFS pointer" in w for w in report.warnings)
    assert any("dev.txt is a Git LFS pointer" in w for w in report.warnings)
    assert registry.core.get_competition("alpha-cls").splits == ["all", "low"]


def test_broken_config_fails_only_that_competition(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    (tree.competition_dir("beta-reg") / "config.yaml").write_text("id: beta-reg\nname: [\n")
    config = tree.competition_dir("alpha-cls") / "config.yaml"
    config.write_text(config.read_text().replace("name: accuracy", "name: ''"))
    report = import_mlebench(registry.installer, tree.repo)
    by_id = {r.competition_id: r for r in report.results}
    assert "not valid YAML" in by_id["beta-reg"].error
    assert "grader.name" in by_id["alpha-cls"].error
    assert by_id["gamma-lfs"].status is ImportStatus.METADATA_ONLY


def test_escaping_symlink_in_prepared_data_is_refused(registry, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("do not import me")
    os.symlink(secret, tree.prepared("alpha-cls") / "public" / "leak.txt")
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    assert report.results[0].status is ImportStatus.FAILED
    assert "leak.txt is a symbolic link" in report.results[0].error


def test_a_public_folder_named_description_md_is_refused(registry, tmp_path: Path) -> None:
    """Each sandbox's description lies at data/description.md, over the public files; a
    file of that name is simply covered, a folder could not be."""
    tree = build_mlebench_tree(tmp_path)
    folder = tree.prepared("alpha-cls") / "public" / "description.md"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    assert report.results[0].status is ImportStatus.FAILED
    assert "folder named description.md" in report.results[0].error
    shutil.rmtree(folder)
    (folder.parent / "description.md").write_text("an upstream file of that name")
    report = import_mlebench(
        registry.installer, tree.repo, tree.data_dir, competitions=["alpha-cls"]
    )
    assert report.results[0].status is ImportStatus.PREPARED


# The project's own format


def test_own_format_imports(registry, tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path)
    result = import_competition(registry.installer, folder)
    assert result.status is ImportStatus.PREPARED
    record = registry.core.get_competition("own-comp")
    assert record.source is Source.MLEB
    assert record.metric.params == {"k": "1"}
    assert record.id_columns == ["id"] and record.target_columns == ["label"]
    assert record.splits == ["dev", "low"] and record.complexity == "low"
    assert record.description_obfuscated is None
    assert not record.lower_is_better  # inferred: 0.9 first, 0.5 last
    _, ranking = registry.core.get_leaderboard("own-comp")
    assert ranking.gold_threshold == 0.9
    assert registry.core.get_leaderboard("own-comp")[0].leaderboard[0].extra == {"extra_col": "x"}


def violations(folder: Path) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_competition(folder)
    return {v.field: v.description for v in caught.value.violations}


def test_own_format_reports_every_problem_by_file_and_field(tmp_path: Path) -> None:
    folder = build_own_competition(
        tmp_path,
        id="bad id!",
        name=None,
        metric={"params": {"k": [1]}},
        answers="../secret.csv",
        sample_submission="missing.csv",
        complexity="extreme",
        lower_is_better="yes",
        colour="blue",
    )
    found = violations(folder)
    assert set(found) == {
        "competition.yaml:id",
        "competition.yaml:name",
        "competition.yaml:metric.name",
        "competition.yaml:metric.params.k",
        "competition.yaml:answers",
        "competition.yaml:sample_submission",
        "competition.yaml:complexity",
        "competition.yaml:lower_is_better",
        "competition.yaml:colour",
    }
    assert found["competition.yaml:colour"] == "unknown field"


def test_own_format_file_problems(tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path, lower_is_better=True)
    (folder / "description.md").unlink()
    found = violations(folder)
    assert found["description.md"] == "missing"
    # Declared lower-is-better, but the leaderboard runs 0.9 -> 0.5.
    assert "ascending" in found["leaderboard.csv:score"]

    (folder / "description.md").write_text("ok")
    (folder / "leaderboard.csv").write_text("team,points\nA,1\n")
    assert "no 'score' column" in violations(folder)["leaderboard.csv:score"]
    (folder / "leaderboard.csv").write_text("score\n0.5\nabc\n")
    assert "row 2" in violations(folder)["leaderboard.csv:score"]
    (folder / "leaderboard.csv").write_text(LFS_POINTER)
    assert "git lfs pull" in violations(folder)["leaderboard.csv"]


def test_own_format_structure_problems(tmp_path: Path) -> None:
    assert violations(tmp_path / "nowhere") == {str(tmp_path / "nowhere"): "not a folder"}
    folder = build_own_competition(tmp_path)
    (folder / "competition.yaml").write_text("- just\n- a list\n")
    assert violations(folder) == {"competition.yaml": "must be a mapping of fields"}
    (folder / "competition.yaml").write_text("id: [unclosed\n")
    assert "not valid YAML" in violations(folder)["competition.yaml"]
    (folder / "competition.yaml").unlink()
    assert violations(folder) == {"competition.yaml": "missing"}


def test_own_format_error_message_names_file_and_field(tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path, target_columns=[])
    with pytest.raises(InvalidArgumentError) as caught:
        validate_competition(folder)
    assert "competition.yaml:target_columns" in caught.value.message
    assert str(folder) in caught.value.message


def test_own_format_metric_shorthand_and_splits(tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path, metric="rmse", splits=["lite"], complexity=None)
    record, answers = validate_competition(folder)
    assert record.metric.name == "rmse" and record.metric.params == {}
    assert record.splits == ["low"] and answers == "answers.csv"
    config = yaml.safe_load((folder / "competition.yaml").read_text())
    assert "complexity" not in config
