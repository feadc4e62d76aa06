"""Building the built-in competitions: valid own-format folders, checked against checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from services.builtin import checksums, folder
from services.builtin.catalog import BUILTINS, selected
from services.common.errors import FailedPreconditionError, NotFoundError
from services.registry.importers.own_format import validate_competition

IDS = list(BUILTINS)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("builtin")
    return {path.name: path for path in (b.build(root) for b in selected())}


def test_there_are_at_least_four_of_different_kinds():
    assert len(BUILTINS) >= 4
    categories = {b.definition.category for b in BUILTINS.values()}
    assert {"Tabular", "Image Classification", "Text Classification"} <= categories
    assert {b.definition.lower_is_better for b in BUILTINS.values()} == {True, False}


@pytest.mark.parametrize("competition_id", IDS)
def test_builds_a_valid_own_format_competition(built, competition_id):
    record, answers = validate_competition(built[competition_id])
    assert record.id == competition_id and answers == "answers.csv"
    assert record.splits == ["builtin"] and record.complexity == ""
    assert record.lower_is_better is BUILTINS[competition_id].definition.lower_is_better
    assert 30 <= len(record.leaderboard) <= 100
    assert all(e.team_name.startswith("baseline: ") for e in record.leaderboard)
    for description in (record.description, record.description_obfuscated):
        assert "$" not in description
        assert "synthetic baselines" in " ".join(description.split())


@pytest.mark.parametrize("competition_id", IDS)
def test_sample_submission_and_answers_name_the_test_ids(built, competition_id):
    path = built[competition_id]
    test = pd.read_csv(path / "public" / "test.csv")
    sample = pd.read_csv(path / "public" / "sample_submission.csv")
    answers = pd.read_csv(path / "private" / "answers.csv")
    definition = BUILTINS[competition_id].definition
    assert list(sample.columns) == list(answers.columns)
    assert list(sample.columns) == [definition.id_column, definition.target_column]
    assert sample[definition.id_column].tolist() == test[definition.id_column].tolist()
    assert sample[definition.id_column].tolist() == answers[definition.id_column].tolist()
    assert definition.target_column not in test.columns
    assert not (path / "public" / "answers.csv").exists()


def test_builds_are_byte_identical(built, tmp_path):
    again = [b.build(tmp_path) for b in selected()]
    for path in again:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            original = built[path.name] / file.relative_to(path)
            assert file.read_bytes() == original.read_bytes(), file


def test_checksums_cover_every_data_file(built):
    recorded = checksums.recorded()
    assert set(recorded) == set(IDS)
    for competition_id, path in built.items():
        files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
        data_files = {f for f in files if f.startswith(("public/", "private/"))}
        assert set(recorded[competition_id]) == data_files


def test_changed_data_fails_the_build_naming_the_file(tmp_path, monkeypatch):
    recorded = checksums.recorded()
    competition_id = "diabetes-progression"
    recorded[competition_id]["public/train.csv"] = hashlib.sha256(b"other data").hexdigest()
    altered = tmp_path / "checksums.yaml"
    altered.write_text(yaml.safe_dump(recorded))
    monkeypatch.setattr(checksums, "CHECKSUMS_FILE", altered)
    with pytest.raises(FailedPreconditionError, match=r"public/train\.csv") as caught:
        BUILTINS[competition_id].build(tmp_path / "out")
    assert caught.value.reason == "BUILTIN_CHECKSUM_MISMATCH"


def test_missing_leaderboard_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "LEADERBOARDS_DIR", tmp_path)
    with pytest.raises(FailedPreconditionError, match="make_builtin_leaderboards"):
        BUILTINS["handwritten-digits"].build(tmp_path / "out")


def test_unknown_ids_are_named():
    with pytest.raises(NotFoundError, match="'nope'"):
        selected(["handwritten-digits", "nope"])
