"""A registry holding one real MLE-bench competition id (spaceship-titanic), imported in
mleb's own format, with a marker string in its private answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from services.common.settings import Settings
from services.grader.app import grader_service
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller, ImportStatus
from services.registry.importers.own_format import import_competition
from tests.fixtures.registry_trees import build_own_competition

COMPETITION = "spaceship-titanic"
MARKER = "ANSWERMARKER"
# 20 teams, higher is better: gold 0.95 (position 2), silver 0.85 (4), bronze 0.65 (8).
LEADERBOARD = [round(1.0 - 0.05 * i, 2) for i in range(20)]
IDS = [f"{MARKER}{i:04d}_01" for i in range(40)]
TRUTH = [i % 3 == 0 for i in range(40)]


@dataclass
class Stack:
    settings: Settings
    registry_port: int
    grader_port: int


def submission_csv(predictions: list[bool] | None = None, ids: list[str] | None = None) -> bytes:
    frame = pd.DataFrame({"PassengerId": ids or IDS, "Transported": predictions or TRUTH})
    return frame.to_csv(index=False).encode()


def import_spaceship(settings: Settings, root: Path) -> None:
    folder = build_own_competition(
        root,
        COMPETITION,
        metric={"name": "accuracy"},
        id_columns=["PassengerId"],
        target_columns=["Transported"],
        answers="test.csv",
        splits=["low", "all"],
    )
    (folder / "private" / "answers.csv").unlink()
    (folder / "private" / "test.csv").write_bytes(submission_csv())
    (folder / "public" / "sample_submission.csv").write_bytes(submission_csv([False] * 40))
    (folder / "leaderboard.csv").write_text("score\n" + "".join(f"{s}\n" for s in LEADERBOARD))
    core = RegistryCore.from_settings(settings)
    try:
        result = import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
    finally:
        core.close()
    assert result.status is ImportStatus.PREPARED, result


@pytest.fixture
def imported_settings(settings: Settings, tmp_path: Path) -> Settings:
    import_spaceship(settings, tmp_path / "sources")
    return settings


@pytest.fixture
async def stack(serve, imported_settings: Settings) -> Stack:
    registry = await serve([registry_service(imported_settings)], imported_settings)
    grader_settings = Settings(
        **{**imported_settings.__dict__, "registry_addr": f"127.0.0.1:{registry.port}"}
    )
    grader = await serve([grader_service(grader_settings)], grader_settings)
    return Stack(grader_settings, registry.port, grader.port)
