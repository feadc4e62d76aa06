"""Concurrent imports of one competition id take turns (issue 16, item 7). On PostgreSQL
they once failed with DeadlockDetected (an existing id) or UniqueViolation (a new one)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.registry.importers.install import ImportStatus
from services.registry.importers.own_format import import_competition
from tests.fixtures.registry_trees import build_own_competition

IMPORTS = 8


@pytest.mark.parametrize("exists", [False, True], ids=["new-id", "existing-id"])
def test_concurrent_imports_of_one_id_all_succeed(registry, tmp_path: Path, exists) -> None:
    folder = build_own_competition(tmp_path, "raced")
    if exists:
        assert import_competition(registry.installer, folder).status is ImportStatus.PREPARED
    with ThreadPoolExecutor(IMPORTS) as pool:
        futures = [
            pool.submit(import_competition, registry.installer, folder) for _ in range(IMPORTS)
        ]
        results = [future.result() for future in futures]
    assert {r.status for r in results} == {ImportStatus.PREPARED}
    competition = registry.core.get_competition("raced")
    assert competition.leaderboard_size == 3
    names = [f.path for f in competition.public_files]
    assert sorted(names) == sorted(set(names)) == ["sample_submission.csv", "train.csv"]
