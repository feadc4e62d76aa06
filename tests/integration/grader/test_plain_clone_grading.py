"""Grading a plain clone of MLE-bench through real servers on port 0 (issue 12).

billion-word-imputation is lower-is-better and, in a plain clone, its leaderboard is a Git
LFS pointer: reports used to say `is_lower_better: false` with silent null thresholds. And a
metadata-only competition's refusal used to carry the operator's data path."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mleb.client import AsyncClient
from mleb.common.v1 import common_pb2
from mleb.errors import FailedPrecondition

from services.common.settings import Settings
from services.grader.app import grader_service
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.mlebench import import_mlebench
from tests.fixtures.registry_trees import build_plain_clone_tree

BWI = "billion-word-imputation"
TAXI = "new-york-city-taxi-fare-prediction"


@pytest.fixture
async def servers(settings: Settings, serve, tmp_path: Path):
    tree = build_plain_clone_tree(tmp_path / "operator-src")
    core = RegistryCore.from_settings(settings)
    try:
        report = import_mlebench(
            CompetitionInstaller(core.sessions, core.storage), tree.repo, tree.data_dir
        )
    finally:
        core.close()
    assert report.failed == [], report
    registry = await serve([registry_service(settings)], settings)
    grader_settings = dataclasses.replace(settings, registry_addr=f"127.0.0.1:{registry.port}")
    grader = await serve([grader_service(grader_settings)], grader_settings)
    return registry.port, grader.port


async def test_reports_keep_the_direction_and_say_no_leaderboard(servers, lab_token, tmp_path):
    registry_port, grader_port = servers
    submission = tmp_path / "submission.csv"
    submission.write_text("id,sentence\n1,the cat sat\n2,a dog\n")
    async with AsyncClient(
        registry=f"127.0.0.1:{registry_port}", grader=f"127.0.0.1:{grader_port}", token=lab_token
    ) as client:
        report = (await client.grade_submission(BWI, submission)).report
        assert report.score == pytest.approx(2.0)  # "ran" is missing: distance 4 over 2 rows
        assert report.is_lower_better is True
        assert not report.HasField("gold_threshold") and not report.HasField("median_threshold")
        assert report.leaderboard_state == common_pb2.LEADERBOARD_STATE_LFS_POINTER
        assert "no leaderboard" in report.leaderboard_note
        assert "git lfs pull" in report.leaderboard_note
        ranked = (await client.rank_score(BWI, 1.0)).ranking
        assert ranked.is_lower_better is True and not ranked.leaderboard_known
        assert ranked.leaderboard_state == common_pb2.LEADERBOARD_STATE_LFS_POINTER
        assert "git lfs pull" in ranked.leaderboard_note
        competition = (await client.get_competition(BWI)).competition
        assert competition.lower_is_better is True
        assert competition.leaderboard_state == common_pb2.LEADERBOARD_STATE_LFS_POINTER
        leaderboard = await client.get_leaderboard(BWI)
        assert "git lfs pull" in leaderboard.thresholds.leaderboard_note


async def test_a_metadata_only_refusal_names_no_server_path(servers, lab_token, tmp_path):
    """The client reads what is wrong and how to fix it; the server's paths stay in its log."""
    registry_port, grader_port = servers
    submission = tmp_path / "submission.csv"
    submission.write_text("key,fare_amount\nk,1.0\n")
    async with AsyncClient(
        registry=f"127.0.0.1:{registry_port}", grader=f"127.0.0.1:{grader_port}", token=lab_token
    ) as client:
        with pytest.raises(FailedPrecondition) as refused:
            await client.grade_submission(TAXI, submission)
        competition = (await client.get_competition(TAXI)).competition
    message = str(refused.value)
    assert "no prepared data" in message and f"mlebench prepare -c {TAXI}" in message
    operator = str(tmp_path / "operator-src")
    assert operator not in message and "/tmp/" not in message
    visible = [competition.data_status_reason, *competition.import_notes]
    assert all(operator not in text and "/tmp/" not in text for text in visible), visible


async def test_mleb_grade_prints_the_note_and_names_the_report_utc(servers, lab_token, tmp_path):
    _, grader_port = servers
    submission = tmp_path / "submission.csv"
    submission.write_text("id,sentence\n1,the cat sat\n2,a dog ran\n")
    jsonl = tmp_path / "submissions.jsonl"
    jsonl.write_text(json.dumps({"competition_id": BWI, "submission_path": str(submission)}))
    out = tmp_path / "reports"
    env = {**os.environ, "MLEB_TOKEN": lab_token, "MLEB_GRADER_ADDR": f"127.0.0.1:{grader_port}"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli.main", "grade", "--submission", str(jsonl),
         "--output-dir", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (report_file,) = out.iterdir()
    # The name `mleb run` uses, and MLE-bench's readers' glob `*grading_report*.json` matches.
    assert report_file.name.endswith("-UTC_grading_report.json"), report_file.name
    (entry,) = json.loads(report_file.read_text())["competition_reports"]
    assert entry["is_lower_better"] is True and entry["score"] == 0.0
    assert (
        entry["leaderboard_state"] == "lfs_pointer" and "git lfs pull" in entry["leaderboard_note"]
    )
    assert f"{BWI}: no leaderboard" in result.stderr
