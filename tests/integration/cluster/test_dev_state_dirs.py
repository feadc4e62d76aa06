"""Each development script runs its daemons as whoever starts it (root in CI): they refuse
a state folder another user could swap or fill, and stop signals only what start began."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.dev_clusters import alive, run_script

DAEMONS = {
    "dev_slurm.sh": ("munged", "slurmctld", "slurmd"),
    "dev_s3.sh": ("weed",),
    "dev_kubernetes.sh": (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
    ),
}


@pytest.fixture(params=sorted(DAEMONS))
def script(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def starter(script: str) -> str:
    """A script whose `start` reaches its state-folder checks here."""
    if script in ("dev_slurm.sh", "dev_kubernetes.sh") and os.geteuid() != 0:
        pytest.skip(f"{script} start needs root")
    return script


def filled_folder(path: Path) -> set[str]:
    """A folder holding what a cluster's stop would remove; returns what it holds."""
    path.mkdir(mode=0o755)
    (path / "exports").write_text("export KEEP=1\n")
    (path / "log").mkdir()
    (path / "log" / "keep.log").write_text("kept\n")
    return contents(path)


def contents(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def refused(script: str, action: str, state: Path, why: str) -> None:
    result = run_script(script, action, state, timeout=30)
    assert result.returncode != 0
    assert why in result.stderr
    assert result.stdout == ""


def test_a_relative_state_dir_is_refused(starter: str) -> None:
    refused(starter, "start", Path("relative/state"), "must be an absolute path")


@pytest.mark.parametrize("action", ["start", "stop"])
def test_a_symlinked_state_dir_is_refused_and_its_target_untouched(
    starter: str, action: str, tmp_path: Path
) -> None:
    before = filled_folder(tmp_path / "target")
    (tmp_path / "state").symlink_to(tmp_path / "target")
    refused(starter, action, tmp_path / "state", "is a symlink")
    assert contents(tmp_path / "target") == before


def test_a_symlink_above_the_state_dir_is_refused(starter: str, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    refused(starter, "start", tmp_path / "link" / "state", "is a symlink")
    assert contents(tmp_path / "real") == set()


def test_a_folder_others_may_write_above_the_state_dir_is_refused(
    starter: str, tmp_path: Path
) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)  # writable by all, and not sticky as /tmp is
    refused(starter, "start", tmp_path / "open" / "state", "another user could replace")
    assert contents(tmp_path / "open") == set()


@pytest.mark.parametrize("action", ["start", "stop"])
def test_a_state_dir_owned_by_another_user_is_refused(
    starter: str, action: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a folder away")
    before = filled_folder(tmp_path / "theirs")
    os.chown(tmp_path / "theirs", 65534, 65534)
    refused(starter, action, tmp_path / "theirs", "must be ours alone")
    assert contents(tmp_path / "theirs") == before


@pytest.mark.parametrize("action", ["start", "stop"])
def test_a_folder_holding_the_other_scripts_cluster_is_refused(
    starter: str, action: str, tmp_path: Path
) -> None:
    filled_folder(tmp_path / "state")
    other = next(name for name in DAEMONS if name != starter).removesuffix(".sh")
    (tmp_path / "state" / "cluster").write_text(f"{other}\n")
    before = contents(tmp_path / "state")
    refused(starter, action, tmp_path / "state", f"holds a {other} cluster")
    assert contents(tmp_path / "state") == before


@pytest.fixture
def bystander() -> Iterator[int]:
    """A process that no cluster started."""
    process = subprocess.Popen(["sleep", "600"])
    yield process.pid
    process.kill()
    process.wait()


def test_stop_signals_no_process_that_a_stale_pid_file_names(
    script: str, tmp_path: Path, bystander: int
) -> None:
    # The pid is live, but its start time is not the one recorded: the pid was reused.
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    for daemon in DAEMONS[script]:
        (state / f"{daemon}.pid").write_text(f"{bystander} 1\n")
    result = run_script(script, "stop", state, timeout=60)
    assert result.returncode == 0, result.stderr
    assert alive(bystander)
    assert not state.exists()


def test_stop_without_a_cluster_does_nothing(script: str, tmp_path: Path) -> None:
    result = run_script(script, "stop", tmp_path / "never-started", timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "never-started").exists()
