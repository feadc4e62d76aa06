"""`mleb demo`, the README's main command, end to end on the real Docker engine."""

from __future__ import annotations

import subprocess
import sys

import docker
import docker.errors
import pytest

from tests.conftest import require_or_skip


def _docker_answers() -> bool:
    try:
        docker.from_env().ping()
    except docker.errors.DockerException:
        return False
    return True


@pytest.mark.docker
@pytest.mark.slow
def test_demo_runs_the_baseline_agent_and_prints_a_medal_report():
    require_or_skip(_docker_answers(), "a Docker engine", "MLEB_REQUIRE_DOCKER")
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for expected in (
        "Imported breast-cancer-diagnosis: prepared",
        "validation: Submission is valid.",
        "Sandbox finished: SANDBOX_STATE_SUCCEEDED",
        "Servers stopped.",
        "valid_submission    │ True",
    ):
        assert expected in out, expected
    # The baseline agent is good enough for a medal on this competition's synthetic board.
    assert "Score 0.0" in out and ": gold." in out
