"""Imported text that would not fit its column is refused before the database, the same on
SQLite and PostgreSQL (issue 16, item 7). A 50 MB category (1 MB here) once crashed an import on
PostgreSQL (StringDataRightTruncation) and imported on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import InvalidArgumentError, NotFoundError
from services.registry.importers.own_format import import_competition
from tests.fixtures.registry_trees import build_own_competition

CASES = [
    ({"category": "x" * 1_000_000}, "competition.category: longer than 128 characters"),
    ({"name": "n" * 5000}, "competition.name: longer than 512 characters"),
    ({"name": "bad\x00name"}, "competition.name: contains a NUL character"),
]


@pytest.mark.parametrize(("fields", "message"), CASES, ids=["category", "name", "nul"])
def test_text_that_does_not_fit_is_refused(registry, tmp_path: Path, fields, message) -> None:
    folder = build_own_competition(tmp_path, "too-wide", **fields)
    with pytest.raises(InvalidArgumentError) as err:
        import_competition(registry.installer, folder)
    assert err.value.message == message
    with pytest.raises(NotFoundError):  # nothing half-written
        registry.core.get_competition("too-wide")


def test_a_leaderboard_team_name_that_does_not_fit_is_refused(registry, tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path, "wide-team")
    (folder / "leaderboard.csv").write_text(f"team_name,score\n{'t' * 600},0.5\n")
    with pytest.raises(InvalidArgumentError, match="team_name: longer than 512 characters"):
        import_competition(registry.installer, folder)


def test_a_description_with_nul_is_refused(registry, tmp_path: Path) -> None:
    folder = build_own_competition(tmp_path, "nul-description")
    (folder / "description.md").write_text("# Task\n\x00 hidden\n")
    with pytest.raises(InvalidArgumentError, match="description: contains a NUL character"):
        import_competition(registry.installer, folder)


def test_a_huge_configuration_is_refused_unparsed(tmp_path: Path, registry) -> None:
    """PyYAML takes about 45 s over a 50 MB scalar: such a file is refused by its size."""
    folder = build_own_competition(tmp_path, "huge-config")
    config = folder / "competition.yaml"
    config.write_text(config.read_text().replace("Tabular", "x" * 50_000_000))
    with pytest.raises(InvalidArgumentError, match=r"competition\.yaml is larger than 1048576"):
        import_competition(registry.installer, folder)
