"""`mleb demo`, the README's main command, end to end on the real Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors
import pytest

from services.demo import check_local_agent_can_run
from tests.conftest import require_or_skip

REPO = Path(__file__).resolve().parents[2]


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
        "valid_submission: True",  # not a terminal: whole lines, no table
    ):
        assert expected in out, expected
    # The baseline agent is good enough for a medal on this competition's synthetic board.
    assert "Score 0.0" in out and ": gold." in out


@pytest.mark.skipif(os.geteuid() != 0, reason="the check exists only for root")
def test_as_root_a_python_the_agent_user_cannot_reach_fails_before_anything_starts(tmp_path):
    # A venv in a folder closed to other users, seeing this venv's packages (as a pyenv
    # Python under /root would).
    closed = tmp_path / "root-home"
    closed.mkdir(mode=0o700)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", closed / "venv"], check=True)
    python = closed / "venv" / "bin" / "python"
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    site = subprocess.check_output([python, "-c", "import site; print(site.getsitepackages()[0])"])
    (Path(site.decode().strip()) / "ours.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    with pytest.raises(RuntimeError) as err:
        check_local_agent_can_run(str(python))
    assert "nobody" in str(err.value) and "install Docker" in str(err.value)
    # The CLI says it in one sentence and starts no server.
    result = subprocess.run(
        [python, "-m", "services.cli.main", "demo", "--local"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "demo failed:" in result.stdout and "serving" not in result.stdout
