"""`mleb registry import...` on the database, `mleb competitions ...` through a real server."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.registry_cmds import competitions_app, registry_app
from services.registry.app import registry_service
from tests.fixtures.registry_trees import (
    build_mlebench_tree,
    build_own_competition,
    build_plain_clone_tree,
)

runner = CliRunner()


@pytest.fixture
def env(settings, database_url: str) -> dict[str, str]:
    return {"MLEB_DATA_DIR": str(settings.data_dir), "MLEB_DATABASE_URL": database_url}


def test_import_commands(env, tmp_path: Path) -> None:
    tree = build_mlebench_tree(tmp_path / "src")
    result = runner.invoke(
        registry_app,
        ["import-mlebench", "--repo", str(tree.repo), "--data-dir", str(tree.data_dir)],
        env=env,
    )
    # delta-bad's checksum mismatch fails the command, after the others imported.
    assert result.exit_code == 1, result.output
    assert "checksum mismatch" in result.output and "3 prepared" in result.output
    result = runner.invoke(
        registry_app,
        [
            "import-mlebench",
            "--repo",
            str(tree.repo),
            "--data-dir",
            str(tree.data_dir),
            "--competitions",
            "delta-bad",
            "--skip-checksums",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(registry_app, ["import-mlebench", "--repo", str(tmp_path)], env=env)
    assert result.exit_code == 2 and "not an MLE-bench checkout" in result.output

    own = build_own_competition(tmp_path / "own")
    assert runner.invoke(registry_app, ["import", str(own)], env=env).exit_code == 0
    (own / "competition.yaml").write_text("id: own-comp\n")
    result = runner.invoke(registry_app, ["import", str(own)], env=env)
    assert result.exit_code == 2 and "competition.yaml:metric" in result.output


async def test_list_and_show(settings, env, serve, lab_token, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, database_url=env["MLEB_DATABASE_URL"])
    own = build_own_competition(tmp_path / "own")
    assert runner.invoke(registry_app, ["import", str(own)], env=env).exit_code == 0
    server = await serve([registry_service(settings)], settings)
    cli_env = {"MLEB_REGISTRY_ADDR": f"127.0.0.1:{server.port}", "MLEB_TOKEN": lab_token}

    def invoke(*args: str):
        return asyncio.to_thread(runner.invoke, competitions_app, list(args), env=cli_env)

    listed = await invoke("list", "--split", "low")
    assert listed.exit_code == 0, listed.output
    assert "own-comp" in listed.output and "1 competitions" in listed.output
    shown = await invoke("show", "own-comp")
    assert shown.exit_code == 0 and "Classify rows." in shown.output
    assert "2 files" in shown.output and "sample_submission.csv" in shown.output
    missing = await invoke("show", "nope")
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
    denied = await asyncio.to_thread(
        runner.invoke, competitions_app, ["list"], env={**cli_env, "MLEB_TOKEN": ""}
    )
    assert denied.exit_code == 1 and "UNAUTHENTICATED" in denied.output


async def test_plain_clone_shows_direction_and_the_lfs_fix(
    settings, env, serve, lab_token, tmp_path: Path
) -> None:
    """Issue 12: a plain clone's pointer leaderboards no longer flip the direction, and the
    missing leaderboard shows with the `git lfs pull` fix. CliRunner's output is not a
    terminal, as in CI: the notes print whole, never folded mid-path."""
    # A deep checkout path, so any folding at 80 columns would cut the note.
    tree = build_plain_clone_tree(tmp_path / ("deep-" * 12) / "src")
    imported = runner.invoke(
        registry_app,
        ["import-mlebench", "--repo", str(tree.repo), "--data-dir", str(tree.data_dir)],
        env=env,
    )
    assert imported.exit_code == 0, imported.output
    lines = imported.output.splitlines()
    note = next(line for line in lines if "Git LFS pointer" in line)
    assert "mlebench/competitions/billion-word-imputation/leaderboard.csv is a Git LFS" in note
    assert "git lfs pull" in note and "│" not in imported.output

    settings = dataclasses.replace(settings, database_url=env["MLEB_DATABASE_URL"])
    server = await serve([registry_service(settings)], settings)
    cli_env = {"MLEB_REGISTRY_ADDR": f"127.0.0.1:{server.port}", "MLEB_TOKEN": lab_token}
    shown = await asyncio.to_thread(
        runner.invoke, competitions_app, ["show", "billion-word-imputation"], env=cli_env
    )
    assert shown.exit_code == 0, shown.output
    facts = shown.output.splitlines()
    assert "lower is better: True" in facts
    leaderboard = next(line for line in facts if line.startswith("leaderboard: "))
    assert "no leaderboard" in leaderboard and "git lfs pull" in leaderboard
    # Client-facing: no server path anywhere, neither the checkout nor the data dir.
    assert str(tmp_path) not in shown.output
    listed = await asyncio.to_thread(runner.invoke, competitions_app, ["list"], env=cli_env)
    assert "none (LFS pointer)" in listed.output
